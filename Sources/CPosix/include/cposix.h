#ifndef CAIRN_CPOSIX_H
#define CAIRN_CPOSIX_H

/// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not see.
int cairn_syncfs(int fd);
int cairn_o_direct(void);


/// For a long-running server: at most two malloc arenas, and allocations of 64 KiB and up
/// mapped directly so they return to the system when freed.
void cairn_tune_malloc_for_server(void);

#include <spawn.h>

/// Makes a spawned process lead a session of its own (POSIX_SPAWN_SETSID, a GNU extension), so a
/// daemon outlives its terminal.
int cairn_spawn_in_new_session(posix_spawnattr_t *attributes);

/// pipe2(2) with O_CLOEXEC on both ends (GNU).
int cairn_pipe_cloexec(int fds[2]);

/// Closes every descriptor from `lowest` up in the spawned process (glibc 2.34+).
int cairn_spawn_close_from(posix_spawn_file_actions_t *actions, int lowest);

#endif
