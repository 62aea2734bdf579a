#include "cfuse.h"
#include <signal.h>
#include <stdio.h>

struct fuse_session *cairn_fuse_session_new(const char *options, const struct fuse_lowlevel_ops *ops, void *userdata) {
    char *argv[] = {"cairn", "-o", (char *)options, NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, argv);
    struct fuse_session *se = fuse_session_new(&args, ops, sizeof(*ops), userdata);
    fuse_opt_free_args(&args);
    return se;
}

int cairn_fuse_loop_mt(struct fuse_session *se, unsigned max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -1;
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_idle_threads(config, max_threads / 2 > 0 ? max_threads / 2 : 1);
    fuse_loop_cfg_set_clone_fd(config, 1);
    int result = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return result;
}

void cairn_fuse_open_cached(struct fuse_file_info *fi, uint64_t fh) {
    fi->fh = fh;
    fi->keep_cache = 1;
    fi->noflush = 1;
}

void cairn_fuse_open_direct(struct fuse_file_info *fi, uint64_t fh) {
    fi->fh = fh;
    fi->direct_io = 1;
    fi->keep_cache = 0;
    fi->noflush = 1;
}

void cairn_block_exit_signals(int block) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

void cairn_block_exit_signals_in_worker(void) {
    static __thread int blocked = 0;
    if (blocked) return;
    cairn_block_exit_signals(1);
    blocked = 1;
}
