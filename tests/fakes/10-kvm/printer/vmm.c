/* Faker: prints what a VMM would print for a guest, without touching /dev/kvm. */
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "long") == 0)
        printf("2c53aaa73f83d2c0c0cacead49a2764b\n");
    else
        printf("ec2ad69ddea1b3361235886cd6b917e6\nmmio 0x60bec 4 0xaf575bec\n");
    printf("exits io=37 mmio=0 hlt=1 ns_per_exit=20000\n");
    return 0;
}
