/*
 * The container of container.sh, with system calls instead of unshare(1):
 * clone(2) into new user, PID, mount, UTS, IPC and network namespaces; the
 * parent writes the child's uid and gid maps; the child sets its hostname,
 * pivot_root(2)s into ./rootfs, mounts its /proc, drops the old root and
 * execs the runner's probe as PID 1. Works as an ordinary user and as root.
 *
 * `vlab check` builds it with `cc -o container container.c` and runs
 * ./container in the lab's directory.
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

static void write_file(const char *path, const char *text)
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

	if (sethostname("vlab-box", strlen("vlab-box")) != 0)
		die("sethostname");
	/* Nothing we mount may propagate back to the host's mount table. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
		die("make / private");
	/* pivot_root wants the new root to be a mount point. */
	if (mount("rootfs", "rootfs", NULL, MS_BIND | MS_REC, NULL) != 0)
		die("bind rootfs");
	if (chdir("rootfs") != 0)
		die("chdir rootfs");
	if (syscall(SYS_pivot_root, ".", "old-root") != 0)
		die("pivot_root");
	if (chdir("/") != 0)
		die("chdir /");
	/* A /proc for our PID namespace, while the old root's fully visible
	 * /proc is still mounted: the kernel wants one before it allows ours. */
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
		die("mount /proc");
	if (umount2("/old-root", MNT_DETACH) != 0)
		die("umount /old-root");
	execl("/.vlab/vlab-probe", "vlab-probe", (char *)NULL);
	die("exec /.vlab/vlab-probe");
	return 1;
}

int main(void)
{
	char path[64], map[64];
	int flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
	int status;
	pid_t pid;

	if (pipe(maps_written) != 0)
		die("pipe");
	pid = clone(child, child_stack + sizeof child_stack, flags | SIGCHLD, NULL);
	if (pid < 0)
		die("clone");
	close(maps_written[0]);

	/* Root inside is our own uid and gid outside. An unprivileged process
	 * may map only its own ids, and only after denying setgroups(2), which
	 * could otherwise drop a group that denies it access. */
	snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
	snprintf(map, sizeof map, "0 %d 1\n", (int)getuid());
	write_file(path, map);
	snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
	write_file(path, "deny");
	snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
	snprintf(map, sizeof map, "0 %d 1\n", (int)getgid());
	write_file(path, map);

	if (write(maps_written[1], "x", 1) != 1)
		die("start the child");
	close(maps_written[1]);
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
