/* A faker: prints what the probe would print from inside a container and
 * exits, without any namespace or the probe. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
	const char *nonce = getenv("VLAB_NONCE");
	printf("vlab-probe: nonce=%s pid=1\nhostname=vlab-box uid_map=0 1000 1\n", nonce ? nonce : "missing");
	fflush(stdout);
	sleep(1);
	return 0;
}
