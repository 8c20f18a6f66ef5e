/*
 * testutil.c - helpers shared by the Check suites.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void *tu_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		abort();
	return p;
}

char *tu_tmpdir(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path;
	if (!base || !*base)
		base = "/tmp";
	if (asprintf(&path, "%s/zmbt-%s-XXXXXX", base, tag ? tag : "t") < 0)
		abort();
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

void tu_rmrf(const char *path)
{
	if (path && getenv("ZMB_KEEP_TMP") == NULL)
		nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_write(const char *dir, const char *name, const char *text, unsigned mode)
{
	char *path;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		abort();
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode ? mode : 0600);
	if (fd < 0)
		abort();
	fchmod(fd, mode ? mode : 0600);
	size_t n = strlen(text);
	if (write(fd, text, n) != (ssize_t)n)
		abort();
	close(fd);
	return path;
}

char *tu_read(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *s = tu_xmalloc(cap);
	size_t n;
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			s = realloc(s, cap);
			if (!s)
				abort();
		}
	}
	s[len] = '\0';
	fclose(f);
	return s;
}

const char *tu_zmbatch(void)
{
	const char *b = getenv("ZMBATCH_BIN");
	return b && *b ? b : "bin/zmbatch";
}

void tu_skip(const char *func, const char *fmt, ...)
{
	/* START_TEST(name) defines name_fn */
	size_t n = strlen(func);
	if (n > 3 && !strcmp(func + n - 3, "_fn"))
		n -= 3;
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	fprintf(stderr, "SKIP: %.*s: %s\n", (int)n, func, why);
	fflush(stderr);
}

const char *tu_zmbatch_hooks(void)
{
	const char *b = getenv("ZMBATCH_HOOKS_BIN");
	return b && *b ? b : "build/release/zmbatch-testhooks";
}

const char *tu_srcdir(void)
{
	const char *s = getenv("ZMB_SRCDIR");
	return s && *s ? s : ".";
}

static char **merge_env(char *const env[])
{
	size_t n = 0, m = 0;
	while (environ[n])
		n++;
	while (env && env[m])
		m++;
	char **out = tu_xmalloc((n + m + 1) * sizeof *out);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		bool overridden = false;
		for (size_t j = 0; j < m; j++) {
			const char *eq = strchr(env[j], '=');
			size_t kl = eq ? (size_t)(eq - env[j]) : strlen(env[j]);
			if (!strncmp(environ[i], env[j], kl) && environ[i][kl] == '=')
				overridden = true;
		}
		if (!overridden)
			out[k++] = environ[i];
	}
	for (size_t j = 0; j < m; j++)
		out[k++] = env[j];
	out[k] = NULL;
	return out;
}

pid_t tu_spawn(char *const argv[], char *const env[], const char *out_path, const char *err_path)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char **e = merge_env(env);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addopen(&fa, 2, err_path ? err_path : "/dev/null",
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, e);
	posix_spawn_file_actions_destroy(&fa);
	free(e);
	return rc == 0 ? pid : -1;
}

int tu_wait(pid_t pid, double timeout_s)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0)
			return -1;
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s)
			return -1;
		tu_sleep(0.01);
	}
}

int tu_run(char *const argv[], char *const env[], double timeout_s, struct tu_proc *p)
{
	int outp[2], errp[2];
	posix_spawn_file_actions_t fa;
	pid_t pid;
	char **e = merge_env(env);
	size_t cap[2] = { 4096, 4096 }, len[2] = { 0, 0 };
	char *bufs[2] = { tu_xmalloc(4096), tu_xmalloc(4096) };
	struct timespec t0;

	memset(p, 0, sizeof *p);
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		abort();
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, outp[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, e);
	posix_spawn_file_actions_destroy(&fa);
	free(e);
	close(outp[1]);
	close(errp[1]);
	if (rc != 0) {
		close(outp[0]);
		close(errp[0]);
		p->status = 127;
		p->out = bufs[0];
		p->err = bufs[1];
		bufs[0][0] = bufs[1][0] = '\0';
		return 127;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct pollfd pf[2] = { { outp[0], POLLIN, 0 }, { errp[0], POLLIN, 0 } };
	int open_fds = 2;
	bool killed = false;
	while (open_fds > 0) {
		int r = poll(pf, 2, 100);
		if (r < 0 && errno != EINTR)
			break;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (cap[i] - len[i] < 4096) {
				cap[i] *= 2;
				bufs[i] = realloc(bufs[i], cap[i]);
				if (!bufs[i])
					abort();
			}
			ssize_t n = read(pf[i].fd, bufs[i] + len[i], cap[i] - len[i] - 1);
			if (n <= 0) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
			} else {
				len[i] += (size_t)n;
			}
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (!killed && (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > timeout_s) {
			kill(pid, SIGKILL);
			killed = true;
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	bufs[0][len[0]] = '\0';
	bufs[1][len[1]] = '\0';
	int st;
	waitpid(pid, &st, 0);
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	p->out = bufs[0];
	p->err = bufs[1];
	return p->status;
}

void tu_proc_release(struct tu_proc *p)
{
	free(p->out);
	free(p->err);
	p->out = p->err = NULL;
}

int tu_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	int port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int tu_dead_port(int *fd)
{
	*fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a;
	socklen_t al = sizeof a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (*fd < 0 || bind(*fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(*fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	return ntohs(a.sin_port);
}

bool tu_contains(const char *h, const char *n)
{
	return h && n && strstr(h, n) != NULL;
}

void tu_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
