/*
 * proc: child processes run safely from a process that may have threads. A child is forked and
 * execs an argv array (no shell) with a clean environment, stdin /dev/null, no descriptor
 * inherited beyond 0-2 and every signal at its default; as root it can first become another OS
 * user (setgroups/setgid/setuid, refusing to go on if root could be regained). Small file
 * operations can be done as that user too, so that root never writes in a directory that user
 * controls. Every child is waited for: while these functions run, SIGCHLD must not be ignored
 * (SIG_IGN) and nothing else may reap children with waitpid(-1, ...).
 */
#ifndef PROC_H
#define PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define PROC_WUR __attribute__((warn_unused_result))

#define PROC_MAX_GROUPS 64 /* supplementary groups kept for a user: plenty for a service user */

/* Who the children run as, and what they get. proc_runas_init() fills it for the current user;
 * proc_runas_lookup() switches it to another (as root); proc_runas_free() frees its strings. */
struct proc_runas {
    bool drop; /* root: become uid/gid/groups in the child */
    uid_t uid;
    gid_t gid;
    gid_t groups[PROC_MAX_GROUPS];
    int ngroups;
    char *env[3]; /* PATH, TZ (when set), NULL: nothing else of ours leaks into a child */
    long maxfd;   /* for closing descriptors when close_range() is missing */
};

/* Sets as to run children as the current user, with an environment of PATH (ours, else
 * /usr/local/bin:/usr/bin:/bin) and TZ (when we have one). 0, or -1 when out of memory (as is
 * then left as proc_runas_free() leaves it). */
int proc_runas_init(struct proc_runas *as) PROC_WUR;
/* Frees the environment strings and sets them NULL (accepts NULL and a zeroed struct). */
void proc_runas_free(struct proc_runas *as);

enum proc_user_rc {
    PROC_USER_OK = 0,
    PROC_USER_UNKNOWN, /* no such OS user (or the user database could not be read) */
    PROC_USER_ROOT,    /* the user has uid 0 */
};
/* Makes the children drop to the OS user `name`: its uid, primary gid and (the first
 * PROC_MAX_GROUPS of) its supplementary groups. For a process running as root. as is unchanged
 * on failure. */
enum proc_user_rc proc_runas_lookup(struct proc_runas *as, const char *name) PROC_WUR;
/* Whether gid is the run user's primary group or one of its supplementary groups. */
bool proc_runas_in_group(const struct proc_runas *as, gid_t gid);

/* Forks a child running argv[0] (an absolute path; argv ends with NULL) with as->env, as as, in
 * cwd (NULL: ours), stdin /dev/null, stdout on out_fd, stderr on err_fd (-1: /dev/null), no
 * other descriptor, umask 077. Returns its pid (caller proc_wait()s it), or -1 with errno set
 * when fork failed. A child that cannot set itself up writes why to its stderr and exits 126;
 * one that cannot exec argv[0], 127. */
pid_t proc_spawn(const struct proc_runas *as, const char *cwd, const char *const argv[], int out_fd,
                 int err_fd) PROC_WUR;
/* waitpid(pid), retried on EINTR. 0, or -1 with errno set. */
int proc_wait(pid_t pid, int *status) PROC_WUR;
/* A wait status in words: "exit status 1", "killed by signal 9". */
void proc_describe_status(int status, char *buf, size_t cap);

/* Runs argv as proc_spawn does but as the current user (as->drop is ignored), stderr
 * /dev/null, and reads its standard output into out (NUL-terminated, truncated at cap - 1; the
 * rest is read and dropped; cap >= 1). Returns 0 when it exits 0, else -1. */
int proc_capture(const struct proc_runas *as, const char *const argv[], char *out,
                 size_t cap) PROC_WUR;

/* A small file operation for proc_fileop_run(). */
enum proc_fileop_kind {
    PROC_OP_MKDIR,  /* mkdir path, mode 0700; a directory already there is fine */
    PROC_OP_WRITE,  /* data (len bytes) to other (a new file, mode 0600), fsync, rename to path */
    PROC_OP_APPEND, /* data (len bytes) appended to path, which exists; fsync */
    PROC_OP_UNLINK, /* unlink path; one already gone is fine */
    PROC_OP_RENAME, /* rename path to other */
};

struct proc_fileop {
    enum proc_fileop_kind kind;
    const char *path;
    const char *other; /* PROC_OP_WRITE: the temporary file; PROC_OP_RENAME: the new name */
    const char *data;  /* PROC_OP_WRITE, PROC_OP_APPEND; written in one write(): keep it small */
    size_t len;
};

/* Does op as the run user: directly when as->drop is false, else in a child that became that
 * user (and is waited for). Files are opened with O_NOFOLLOW. Returns 0, or -1 with errno set
 * (for a failure in the child, the errno it met there). */
int proc_fileop_run(const struct proc_runas *as, const struct proc_fileop *op) PROC_WUR;

#endif
