#define _GNU_SOURCE
#include <fcntl.h>
#include <unistd.h>
#include "cposix.h"

int cairn_syncfs(int fd) { return syncfs(fd); }
int cairn_o_direct(void) { return O_DIRECT; }

#include <malloc.h>

void cairn_tune_malloc_for_server(void) {
    mallopt(M_ARENA_MAX, 2);
    mallopt(M_MMAP_THRESHOLD, 160 * 1024);
}

#include <spawn.h>

int cairn_spawn_in_new_session(posix_spawnattr_t *attributes) {
    return posix_spawnattr_setflags(attributes, POSIX_SPAWN_SETSID);
}

int cairn_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest) {
    return posix_spawn_file_actions_addclosefrom_np(actions, lowest);
}

int cairn_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
