#ifndef CAIRN_CFUSE_H
#define CAIRN_CFUSE_H

// libfuse3's low-level API at the 3.12 interface (Debian bookworm ships 3.14).
#define FUSE_USE_VERSION 312
#include <fuse3/fuse_lowlevel.h>

/// A session for `options` (a comma-separated `-o` string), or NULL with a message on stderr.
/// Wraps FUSE_ARGS_INIT, a macro Swift cannot call.
struct fuse_session *cairn_fuse_session_new(const char *options, const struct fuse_lowlevel_ops *ops, void *userdata);

/// Runs the multithreaded loop with at most `max_threads` workers until the session exits
/// (signal, `fusermount3 -u`); fuse_session_loop_mt is a macro over a versioned symbol.
int cairn_fuse_loop_mt(struct fuse_session *se, unsigned max_threads);

/// Marks an open file as immutable content: the kernel keeps its pages across opens and does
/// not flush on close. Sets the bitfields Swift should not poke through the importer.
void cairn_fuse_open_cached(struct fuse_file_info *fi, uint64_t fh);

/// Marks an open file as generated content that may change under its inode (index.json): every
/// read goes to the daemon and is answered from the handle's own copy.
void cairn_fuse_open_direct(struct fuse_file_info *fi, uint64_t fh);

/// Blocks (`block` != 0) or unblocks SIGINT, SIGTERM and SIGHUP in the calling thread, so helper
/// threads started while blocked never take the signal meant to end the session loop.
void cairn_block_exit_signals(int block);

/// Blocks the exit signals in the calling thread the first time it calls (a libfuse worker, and
/// so every thread it starts), leaving the session loop's own thread the one that takes them.
void cairn_block_exit_signals_in_worker(void);

#endif
