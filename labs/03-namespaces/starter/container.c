/*
 * The container of container.sh, with system calls instead of unshare(1)
 * (steps 6 and 7). `vlab check` builds it with `cc -o container container.c`
 * and runs ./container in this directory, with VLAB_NONCE and VLAB_PROBE in
 * the environment. The probe must be exec'd by the child clone(2) started,
 * with the environment passed on; after pivot_root it is /.vlab/vlab-probe.
 *
 * Try it by hand:
 *   cc -Wall -o container container.c && VLAB_PROBE=$PWD/rootfs/.vlab/vlab-probe ./container
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char child_stack[1 << 20];
/* The child waits on this pipe until the parent has written its maps. */
static int maps_written[2];

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Writes `text` into the file at `path` (such as /proc/PID/uid_map), or dies. */
void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		die(path);
	close(fd);
}

static int child(void *arg)
{
	char go;
	(void)arg;
	close(maps_written[1]);
	/* EOF without a byte: the parent failed and is gone. */
	if (read(maps_written[0], &go, 1) != 1)
		exit(1);
	close(maps_written[0]);

	/*
	 * Step 7, TODO: what container.sh did inside its namespaces, as calls:
	 * the hostname vlab-box, a mount table that does not propagate to the
	 * host's, rootfs made a mount point, pivot_root into it, a /proc of
	 * our own, the old root gone. Then exec the probe at its path inside
	 * the new root.
	 */
	execl(getenv("VLAB_PROBE"), "vlab-probe", (char *)NULL);
	die("exec the probe");
	return 1;
}

int main(void)
{
	int flags = 0; /* Step 6, TODO: the namespaces to make. */
	int status;
	pid_t pid;

	if (pipe(maps_written) != 0)
		die("pipe");
	pid = clone(child, child_stack + sizeof child_stack, flags | SIGCHLD, NULL);
	if (pid < 0)
		die("clone");
	close(maps_written[0]);

	/*
	 * Step 6, TODO: make root inside the child's user namespace our own
	 * uid and gid outside: its uid map, its setgroups, its gid map.
	 */

	if (write(maps_written[1], "x", 1) != 1)
		die("start the child");
	close(maps_written[1]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
