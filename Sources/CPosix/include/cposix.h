#ifndef CAIRN_CPOSIX_H
#define CAIRN_CPOSIX_H

/// Linux calls that glibc declares only under _GNU_SOURCE, which Swift's Glibc module does not see.
int cairn_syncfs(int fd);
int cairn_o_direct(void);

#endif
