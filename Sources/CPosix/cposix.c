#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "cposix.h"

int cairn_syncfs(int fd) { return syncfs(fd); }
int cairn_o_direct(void) { return O_DIRECT; }
