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

enum zmb_rc exec_run(struct stage_ctx *ctx, char **err)
{
	struct ex_conf k;
	enum zmb_rc rc = ZMB_ECONFIG;
	char **envp = NULL, **argv = NULL, *path = NULL, *cmd = NULL;
	struct buf tail = BUF_INIT;
	int pfd[2] = { -1, -1 };
	pid_t pid = -1;
	const char *file = ctx->job ? ctx->job->path : "job";

	if (ex_parse(ctx->sc, file, &k, err))
		goto out;
	cmd = cmd_text(&k.argv);
	envp = build_env(k.env);
	path = resolve(k.argv.v[0], envp);
	if (!path) {
		*err = xasprintf("exec '%s': step 'start': program '%s' not found or not executable",
				 cmd, k.argv.v[0]);
		goto out;
	}
	argv = xcalloc(k.argv.n + 1, sizeof *argv);
	for (size_t i = 0; i < k.argv.n; i++)
		argv[i] = xstrdup(k.argv.v[i]);
	if (pipe(pfd) < 0 || fcntl(pfd[0], F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(pfd[1], F_SETFD, FD_CLOEXEC) < 0) {
		*err = xasprintf("exec '%s': step 'start': pipe: %s", cmd, strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	stage_out(ctx, "exec: %s", cmd);
	pid = fork();
	if (pid < 0) {
		*err = xasprintf("exec '%s': step 'start': fork: %s", cmd, strerror(errno));
		rc = ZMB_EIO;
		goto out;
	}
	if (pid == 0) {
		/* child: async-signal-safe calls only */
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
		dup2(pfd[1], 1);
		dup2(pfd[1], 2);
		if (k.cwd && chdir(k.cwd) < 0) {
			static const char m[] = "exec: cannot change to the working directory\n";
			ssize_t w = write(2, m, sizeof m - 1);
			(void)w;
			_exit(126);
		}
		execve(path, argv, envp);
		static const char m[] = "exec: execve failed\n";
		ssize_t w = write(2, m, sizeof m - 1);
		(void)w;
		_exit(127);
	}
	setpgid(pid, pid);   /* also from here: no race with the kill below */
	close(pfd[1]);
	pfd[1] = -1;

	double deadline = mono_now() + (double)k.timeout, kill_at = 0;
	bool timed_out = false, canceled = false, eof = false;
	int status = 0;
	for (;;) {
		if (!eof) {
			struct pollfd p = { pfd[0], POLLIN, 0 };
			int pr = poll(&p, 1, 100);
			if (pr > 0) {
				char chunk[4096];
				ssize_t n = read(pfd[0], chunk, sizeof chunk);
				if (n > 0)
					tail_add(&tail, chunk, (size_t)n);
				else if (n == 0 || (errno != EINTR && errno != EAGAIN))
					eof = true;
			}
		} else {
			struct timespec ts = { 0, 50 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid) {
			/* drain what is left (grandchildren may still hold the pipe: bounded) */
			struct pollfd p = { pfd[0], POLLIN, 0 };
			while (!eof && poll(&p, 1, 0) > 0) {
				char chunk[4096];
				ssize_t n = read(pfd[0], chunk, sizeof chunk);
				if (n <= 0)
					break;
				tail_add(&tail, chunk, (size_t)n);
			}
			pid = -1;
			break;
		}
		double now = mono_now();
		if (!timed_out && !canceled && (now > deadline || runctl_must_abort(ctx->ctl))) {
			timed_out = now > deadline;
			canceled = !timed_out;
			kill(-pid, SIGTERM);
			kill_at = now + 5;
		} else if (kill_at && now > kill_at) {
			kill(-pid, SIGKILL);
			kill_at = 0;
		}
	}
	print_tail(ctx, &tail, k.tail_lines);
	if (timed_out) {
		stage_out(ctx, "timed out after %llds", k.timeout);
		*err = xasprintf("exec '%s': step 'wait': timed out after %llds (process group "
				 "killed)", cmd, k.timeout);
		rc = ZMB_ETIMEOUT;
	} else if (canceled) {
		*err = xasprintf("exec '%s': step 'wait': stopped on request", cmd);
		rc = ZMB_ECANCELED;
	} else if (WIFSIGNALED(status)) {
		stage_out(ctx, "killed by signal %d", WTERMSIG(status));
		*err = xasprintf("exec '%s': step 'wait': killed by signal %d", cmd,
				 WTERMSIG(status));
		rc = ZMB_EPROTO;
	} else if (WEXITSTATUS(status) != 0) {
		stage_out(ctx, "exit status %d", WEXITSTATUS(status));
		*err = xasprintf("exec '%s': step 'wait': exit status %d", cmd, WEXITSTATUS(status));
		rc = ZMB_EPROTO;
	} else {
		stage_out(ctx, "exit status 0");
		rc = ZMB_OK;
	}
out:
	if (pid > 0) {
		kill(-pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (pfd[0] >= 0)
		close(pfd[0]);
	if (pfd[1] >= 0)
		close(pfd[1]);
	buf_release(&tail);
	free_vec(envp);
	free_vec(argv);
	free(path);
	free(cmd);
	strlist_release(&k.argv);
	return rc;
}
