/*
 * proc: the child-process runner (see proc.h): fork, become the run user, exec an argv array
 * with a clean environment and only descriptors 0-2, capture output, wait. Between fork and
 * exec (or _exit) a child makes async-signal-safe calls only, as the parent may have threads;
 * that is also why the file operations done as the run user are plain system calls.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Who the children run as ------------------------------------------------------------- */

int proc_runas_init(struct proc_runas *as)
{
    const char *path = getenv("PATH"), *tz = getenv("TZ");

    memset(as, 0, sizeof *as);
    as->maxfd = sysconf(_SC_OPEN_MAX) > 0 ? sysconf(_SC_OPEN_MAX) : 1024;
    if (asprintf(&as->env[0], "PATH=%s", path ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
        as->env[0] = NULL;
    if (tz != NULL && asprintf(&as->env[1], "TZ=%s", tz) < 0)
        as->env[1] = NULL;
    if (as->env[0] == NULL || (tz != NULL && as->env[1] == NULL)) {
        proc_runas_free(as);
        return -1;
    }
    return 0;
}

void proc_runas_free(struct proc_runas *as)
{
    if (as == NULL)
        return;
    free(as->env[0]);
    free(as->env[1]);
    as->env[0] = as->env[1] = NULL;
}

enum proc_user_rc proc_runas_lookup(struct proc_runas *as, const char *name)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    int n = (int)(sizeof as->groups / sizeof as->groups[0]);

    if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
        return PROC_USER_UNKNOWN;
    if (pw.pw_uid == 0)
        return PROC_USER_ROOT;
    as->uid = pw.pw_uid;
    as->gid = pw.pw_gid;
    as->ngroups = getgrouplist(name, pw.pw_gid, as->groups, &n) < 0
                      ? (int)(sizeof as->groups / sizeof as->groups[0])
                      : n;
    as->drop = true;
    return PROC_USER_OK;
}

bool proc_runas_in_group(const struct proc_runas *as, gid_t gid)
{
    if (gid == as->gid)
        return true;
    for (int i = 0; i < as->ngroups; i++)
        if (as->groups[i] == gid)
            return true;
    return false;
}

/* ---- Child processes -------------------------------------------------------------------- */

/* Between fork and exec (or _exit): async-signal-safe calls only. */
static int child_enter(const struct proc_runas *as, const char *cwd)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int s = 1; s < NSIG; s++)
        (void)sigaction(s, &sa, NULL); /* an ignored signal would stay ignored across exec */
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        return -1;
    if (as->drop) {
        if (setgroups((size_t)as->ngroups, as->groups) != 0 || setgid(as->gid) != 0 ||
            setuid(as->uid) != 0)
            return -1;
        if (setuid(0) == 0) /* root could be regained: refuse to go on */
            return -1;
    }
    if (cwd != NULL && chdir(cwd) != 0)
        return -1;
    umask(077);
    return 0;
}

static void child_say(const char *a, const char *b)
{
    ssize_t w = write(STDERR_FILENO, a, strlen(a));
    w = write(STDERR_FILENO, b, strlen(b));
    w = write(STDERR_FILENO, "\n", 1);
    (void)w;
}

pid_t proc_spawn(const struct proc_runas *as, const char *cwd, const char *const argv[], int out_fd,
                 int err_fd)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;

    int o = out_fd >= 0 ? fcntl(out_fd, F_DUPFD, 3) : -1;
    int e = err_fd >= 0 ? fcntl(err_fd, F_DUPFD, 3) : -1;
    int nul = open("/dev/null", O_RDWR);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(o >= 0 ? o : nul, 1) < 0 ||
        dup2(e >= 0 ? e : nul, 2) < 0)
        _exit(126);
    if (close_range(3, ~0U, 0) != 0)
        for (long fd = 3; fd < as->maxfd; fd++)
            (void)close((int)fd);
    if (child_enter(as, cwd) != 0) {
        child_say("usersigd: cannot switch to the PostgreSQL user or directory for ", argv[0]);
        _exit(126);
    }
    execve(argv[0], (char *const *)argv, as->env);
    child_say("usersigd: cannot execute ", argv[0]);
    _exit(127);
}

int proc_wait(pid_t pid, int *status)
{
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 0;
}

void proc_describe_status(int st, char *buf, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(st));
    else
        snprintf(buf, cap, "wait status %d", st);
}

int proc_capture(const struct proc_runas *as, const char *const argv[], char *out, size_t cap)
{
    struct proc_runas self = *as;
    int p[2], st;
    size_t n = 0;
    char junk[256];

    self.drop = false;
    out[0] = '\0';
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = proc_spawn(&self, NULL, argv, p[1], -1);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    for (;;) {
        bool room = n + 1 < cap;
        ssize_t r = read(p[0], room ? out + n : junk, room ? cap - 1 - n : sizeof junk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (room)
            n += (size_t)r;
    }
    close(p[0]);
    out[n] = '\0';
    if (proc_wait(pid, &st) != 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* ---- File operations as the run user ------------------------------------------------------ */

/* Async-signal-safe: it may run in a child between fork and _exit. */
static int do_fileop(const struct proc_fileop *op)
{
    struct stat st;
    int fd;

    switch (op->kind) {
    case PROC_OP_MKDIR:
        if (mkdir(op->path, 0700) == 0)
            return 0;
        if (errno == EEXIST && stat(op->path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        return -1;
    case PROC_OP_UNLINK:
        return unlink(op->path) == 0 || errno == ENOENT ? 0 : -1;
    case PROC_OP_RENAME:
        return rename(op->path, op->other);
    case PROC_OP_WRITE:
    case PROC_OP_APPEND:
        if (op->kind == PROC_OP_WRITE) {
            (void)unlink(op->other);
            fd = open(op->other, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        } else {
            fd = open(op->path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0)
            return -1;
        /* A few hundred bytes to a regular file: one write, or an error. */
        ssize_t w = write(fd, op->data, op->len);
        int e = w < 0 ? errno : EIO;
        if (w != (ssize_t)op->len || fsync(fd) != 0) {
            e = w == (ssize_t)op->len ? errno : e;
            close(fd);
            errno = e;
            return -1;
        }
        if (close(fd) != 0)
            return -1;
        return op->kind == PROC_OP_WRITE ? rename(op->other, op->path) : 0;
    }
    errno = EINVAL;
    return -1;
}

int proc_fileop_run(const struct proc_runas *as, const struct proc_fileop *op)
{
    int st;

    if (!as->drop)
        return do_fileop(op);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (child_enter(as, NULL) != 0)
            _exit(EPERM);
        _exit(do_fileop(op) == 0 ? 0 : (errno > 0 && errno < 126 ? errno : EIO));
    }
    if (proc_wait(pid, &st) != 0)
        return -1;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    errno = WIFEXITED(st) ? WEXITSTATUS(st) : EIO;
    return -1;
}
