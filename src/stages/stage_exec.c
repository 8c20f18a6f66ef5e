/*
 * stage_exec.c - the `exec` stage: run one command, no shell.
 *
 * Keys:
 *   command = [ "/opt/zextras/bin/zmcontrol", "restart" ]   required; argv, no shell;
 *                                          argv[0] without '/' is looked up in PATH
 *   timeout = "10m"                        default 10m; on expiry the whole process
 *                                          group gets SIGTERM, then SIGKILL after 5 s
 *   env = { ZIMBRA_LOG = "1"; }            optional; added to (or replacing in) the
 *                                          inherited environment
 *   cwd = "/tmp"                           optional working directory
 *   tail_lines = 20                        how many last output lines are recorded
 *
 * stdout and stderr are merged; only the last 64 KiB are kept in memory and
 * the last tail_lines lines are printed with stage_out() ("| line"), followed
 * by "exit status N".  A non-zero exit, a signal or the timeout fail the stage
 * with a message naming the command and the status.  Secrets do not belong on
 * a command line (visible in ps): pass a file name instead.
 *
 * Steps of exec_run: ex_start (resolve the program, pipe, fork; the child
 * is ex_child), ex_wait (collect output, reap, enforce the timeout or a stop
 * request), ex_verdict (the exit status as a result code and message).
 *
 * Runs in the main thread; the child only calls async-signal-safe functions
 * between fork() and execve().
 */
#include "runctl.h"
#include "stage.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TAIL_BYTES 65536

struct ex_conf {
	struct strlist argv;
	long long timeout;
	const char *cwd;
	long long tail_lines;
	const struct cval *env;
};

static int ex_fail(const struct stage_conf *sc, const struct cval *v, const char *file,
		   const char *key, char **err, const char *msg)
{
	*err = xasprintf("%s:%d: stage '%s': key '%s': %s", file ? file : "?",
			 v && v->line ? v->line : sc->line, sc->name, key, msg);
	return -1;
}

static int ex_key_err(const struct stage_conf *sc, char **err)
{
	char *p = strstr(*err, "key '");
	char *n = p ? xasprintf("%.*sstage '%s': %s", (int)(p - *err), *err, sc->name, p)
		    : xasprintf("stage '%s': %s", sc->name, *err);
	free(*err);
	*err = n;
	return -1;
}

static int ex_parse(const struct stage_conf *sc, const char *file, struct ex_conf *k, char **err)
{
	const struct cval *g = &sc->settings;
	memset(k, 0, sizeof *k);
	if (cval_strlist(g, "command", &k->argv, file, err) ||
	    cval_duration(g, "timeout", 600, &k->timeout, file, err) ||
	    cval_str(g, "cwd", NULL, &k->cwd, file, err) ||
	    cval_int(g, "tail_lines", 20, &k->tail_lines, file, err))
		return ex_key_err(sc, err);
	if (!k->argv.n || !*k->argv.v[0])
		return ex_fail(sc, cval_get(g, "command"), file, "command", err,
			       "required: [ \"program\", \"arg\", ... ]");
	if (k->timeout <= 0)
		return ex_fail(sc, cval_get(g, "timeout"), file, "timeout", err, "must be positive");
	if (k->tail_lines < 0 || k->tail_lines > 10000)
		return ex_fail(sc, cval_get(g, "tail_lines"), file, "tail_lines", err,
			       "expected 0..10000");
	k->env = cval_get(g, "env");
	if (k->env) {
		if (k->env->type != CV_GROUP)
			return ex_fail(sc, k->env, file, "env", err, "expected a group { K = \"V\"; }");
		for (size_t i = 0; i < k->env->n; i++) {
			const struct cval *e = &k->env->items[i];
			if (e->type != CV_STR || !e->name || !*e->name || strchr(e->name, '='))
				return ex_fail(sc, e, file, "env", err,
					       "every entry must be NAME = \"string\"");
		}
	}
	return 0;
}

int exec_validate(const struct stage_conf *sc, const char *file, char **err)
{
	struct ex_conf k;
	int r = ex_parse(sc, file, &k, err);
	strlist_release(&k.argv);
	return r;
}

/* "prog arg arg" for messages, capped */
static char *cmd_text(const struct strlist *argv)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < argv->n; i++) {
		if (i)
			buf_adds(&b, " ");
		buf_adds(&b, argv->v[i]);
		if (b.len > 200) {
			b.len = 200;
			b.s[200] = '\0';
			buf_adds(&b, "...");
			break;
		}
	}
	return buf_detach(&b);
}

/* Environment: inherited, with env = { } entries replacing/adding. */
static char **build_env(const struct cval *env)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **v = xcalloc(n + (env ? env->n : 0) + 1, sizeof *v);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t j = 0; env && j < env->n; j++) {
			size_t l = strlen(env->items[j].name);
			replaced |= !strncmp(environ[i], env->items[j].name, l) && environ[i][l] == '=';
		}
		if (!replaced)
			v[k++] = xstrdup(environ[i]);
	}
	for (size_t j = 0; env && j < env->n; j++)
		v[k++] = xasprintf("%s=%s", env->items[j].name, env->items[j].str);
	return v;
}

static void free_vec(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Absolute path of argv[0] (PATH from env), or NULL. */
static char *resolve(const char *prog, char **envp)
{
	if (strchr(prog, '/'))
		return access(prog, X_OK) == 0 ? xstrdup(prog) : NULL;
	const char *path = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";
	for (size_t i = 0; envp[i]; i++)
		if (!strncmp(envp[i], "PATH=", 5))
			path = envp[i] + 5;
	char *copy = xstrdup(path), *save = NULL, *found = NULL;
	for (char *d = strtok_r(copy, ":", &save); d && !found; d = strtok_r(NULL, ":", &save)) {
		char *c = xasprintf("%s/%s", *d ? d : ".", prog);
		struct stat st;
		if (stat(c, &st) == 0 && S_ISREG(st.st_mode) && access(c, X_OK) == 0)
			found = c;
		else
			free(c);
	}
	free(copy);
	return found;
}

static void tail_add(struct buf *t, const char *p, size_t n)
{
	buf_add(t, p, n);
	if (t->len > TAIL_BYTES) {
		size_t drop = t->len - TAIL_BYTES / 2;
		memmove(t->s, t->s + drop, t->len - drop);
		t->len -= drop;
		t->s[t->len] = '\0';
	}
}

static void print_tail(struct stage_ctx *ctx, struct buf *t, long long nlines)
{
	if (!t->len || nlines <= 0)
		return;
	size_t end = t->len;
	while (end && t->s[end - 1] == '\n')
		end--;
	size_t start = end;
	long long lines = 0;
	while (start > 0) {
		if (t->s[start - 1] == '\n' && ++lines >= nlines)
			break;
		start--;
	}
	t->s[end] = '\0';
	char *save = NULL;
	for (char *l = strtok_r(t->s + start, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		stage_out(ctx, "| %s", l);
}

/* One run of the command: what exec_run owns until its cleanup. */
struct ex_run {
	struct ex_conf k;
	char *cmd;                 /* "prog arg ..." for messages */
	char **envp, **argv;
	char *path;                /* resolved argv[0] */
	int pfd[2];                /* child's stdout+stderr -> us */
	pid_t pid;                 /* > 0 while the child is not reaped */
	struct buf tail;           /* last output (TAIL_BYTES at most) */
	bool timed_out, canceled;
	int status;                /* waitpid() status once reaped */
};

/* The child, between fork() and execve(): async-signal-safe calls only. */
static void ex_child(const struct ex_run *r) __attribute__((noreturn));

static void ex_child(const struct ex_run *r)
{
	setpgid(0, 0);
	/* the run blocks its signals (a sigwait thread takes them) and ignores
	 * SIGPIPE; both survive execve: give the command (and daemons it may
	 * start, zmcontrol...) the defaults, so SIGTERM on timeout works */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	int nul = open("/dev/null", O_RDONLY);
	if (nul >= 0)
		dup2(nul, 0);
	dup2(r->pfd[1], 1);
	dup2(r->pfd[1], 2);
	if (r->k.cwd && chdir(r->k.cwd) < 0) {
		static const char m[] = "exec: cannot change to the working directory\n";
		ssize_t w = write(2, m, sizeof m - 1);
		(void)w;
		_exit(126);
	}
	execve(r->path, r->argv, r->envp);
	static const char m[] = "exec: execve failed\n";
	ssize_t w = write(2, m, sizeof m - 1);
	(void)w;
	_exit(127);
}

/* Resolve the program, open the pipe, fork; the child runs in its own group. */
static enum zmb_rc ex_start(struct stage_ctx *ctx, struct ex_run *r, char **err)
{
	r->cmd = cmd_text(&r->k.argv);
	r->envp = build_env(r->k.env);
	r->path = resolve(r->k.argv.v[0], r->envp);
	if (!r->path) {
		*err = xasprintf("exec '%s': step 'start': program '%s' not found or not executable",
				 r->cmd, r->k.argv.v[0]);
		return ZMB_ECONFIG;
	}
	r->argv = xcalloc(r->k.argv.n + 1, sizeof *r->argv);
	for (size_t i = 0; i < r->k.argv.n; i++)
		r->argv[i] = xstrdup(r->k.argv.v[i]);
	if (pipe(r->pfd) < 0 || fcntl(r->pfd[0], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(r->pfd[1], F_SETFD, FD_CLOEXEC) < 0) {
		*err = xasprintf("exec '%s': step 'start': pipe: %s", r->cmd, strerror(errno));
		return ZMB_EIO;
	}
	stage_out(ctx, "exec: %s", r->cmd);
	r->pid = fork();
	if (r->pid < 0) {
		*err = xasprintf("exec '%s': step 'start': fork: %s", r->cmd, strerror(errno));
		return ZMB_EIO;
	}
	if (r->pid == 0)
		ex_child(r);
	setpgid(r->pid, r->pid);   /* also from here: no race with the kill in ex_wait */
	close(r->pfd[1]);
	r->pfd[1] = -1;
	return ZMB_OK;
}

/* Up to 100 ms for output; *eof once the pipe is closed or broken. */
static void ex_read(struct ex_run *r, bool *eof)
{
	struct pollfd p = { r->pfd[0], POLLIN, 0 };
	if (poll(&p, 1, 100) <= 0)
		return;
	char chunk[4096];
	ssize_t n = read(r->pfd[0], chunk, sizeof chunk);
	if (n > 0)
		tail_add(&r->tail, chunk, (size_t)n);
	else if (n == 0 || (errno != EINTR && errno != EAGAIN))
		*eof = true;
}

/* After the reap: what is left (grandchildren may still hold the pipe: bounded). */
static void ex_drain(struct ex_run *r, bool eof)
{
	struct pollfd p = { r->pfd[0], POLLIN, 0 };
	while (!eof && poll(&p, 1, 0) > 0) {
		char chunk[4096];
		ssize_t n = read(r->pfd[0], chunk, sizeof chunk);
		if (n <= 0)
			break;
		tail_add(&r->tail, chunk, (size_t)n);
	}
}

/*
 * Until the child is reaped: collect its output; on the timeout or a stop
 * request SIGTERM its process group, then SIGKILL 5 s later.
 */
static void ex_wait(struct stage_ctx *ctx, struct ex_run *r)
{
	double deadline = mono_now() + (double)r->k.timeout, kill_at = 0;
	bool eof = false;
	for (;;) {
		if (!eof) {
			ex_read(r, &eof);
		} else {
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (waitpid(r->pid, &r->status, WNOHANG) == r->pid) {
			ex_drain(r, eof);
			r->pid = -1;
			return;
		}
		double now = mono_now();
		if (!r->timed_out && !r->canceled &&
		    (now > deadline || runctl_must_abort(ctx->ctl))) {
			r->timed_out = now > deadline;
			r->canceled = !r->timed_out;
			kill(-r->pid, SIGTERM);
			kill_at = now + 5;
		} else if (kill_at && now > kill_at) {
			kill(-r->pid, SIGKILL);
			kill_at = 0;
		}
	}
}

/* How the child ended, as the stage's result (and its last output line). */
static enum zmb_rc ex_verdict(struct stage_ctx *ctx, const struct ex_run *r, char **err)
{
	int status = r->status;
	if (r->timed_out) {
		stage_out(ctx, "timed out after %llds", r->k.timeout);
		*err = xasprintf("exec '%s': step 'wait': timed out after %llds (process group "
				 "killed)", r->cmd, r->k.timeout);
		return ZMB_ETIMEOUT;
	}
	if (r->canceled) {
		*err = xasprintf("exec '%s': step 'wait': stopped on request", r->cmd);
		return ZMB_ECANCELED;
	}
	if (WIFSIGNALED(status)) {
		stage_out(ctx, "killed by signal %d", WTERMSIG(status));
		*err = xasprintf("exec '%s': step 'wait': killed by signal %d", r->cmd,
				 WTERMSIG(status));
		return ZMB_EPROTO;
	}
	if (WEXITSTATUS(status) != 0) {
		stage_out(ctx, "exit status %d", WEXITSTATUS(status));
		*err = xasprintf("exec '%s': step 'wait': exit status %d", r->cmd,
				 WEXITSTATUS(status));
		return ZMB_EPROTO;
	}
	stage_out(ctx, "exit status 0");
	return ZMB_OK;
}

/* NULL-safe: kills and reaps a child still running. */
static void ex_release(struct ex_run *r)
{
	if (r->pid > 0) {
		kill(-r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
	}
	if (r->pfd[0] >= 0)
		close(r->pfd[0]);
	if (r->pfd[1] >= 0)
		close(r->pfd[1]);
	buf_release(&r->tail);
	free_vec(r->envp);
	free_vec(r->argv);
	free(r->path);
	free(r->cmd);
	strlist_release(&r->k.argv);
}

struct stage_result exec_run(struct stage_ctx *ctx)
{
	struct stage_result res = { ZMB_OK, 0, NULL };
	struct ex_run r = { .pfd = { -1, -1 }, .pid = -1, .tail = BUF_INIT };
	enum zmb_rc rc = ZMB_ECONFIG;
	const char *file = ctx->job ? ctx->job->path : "job";

	if (ex_parse(ctx->sc, file, &r.k, &res.err))
		goto out;
	if ((rc = ex_start(ctx, &r, &res.err)) != ZMB_OK)
		goto out;
	ex_wait(ctx, &r);
	print_tail(ctx, &r.tail, r.k.tail_lines);
	rc = ex_verdict(ctx, &r, &res.err);
out:
	ex_release(&r);
	res.rc = rc;
	return res;
}
