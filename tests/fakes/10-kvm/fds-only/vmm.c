/* Faker: creates a VM and a vCPU so that the runner sees them, takes the
 * seed, but never runs the guest: it prints made-up output instead. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/ioctl.h>
int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    int kvm = open("/dev/kvm", O_RDWR);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    (void)vcpu;
    uint32_t seed = 0;
    for (int i = 0; i < 4; i++)
        seed = seed << 8 | (uint8_t)getchar();
    for (int i = 0; i < 16; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        printf("%02x", seed & 0xff);
    }
    printf("\nmmio 0x%x 4 0x%x\n", 0x10000 + (seed & 0xffc), seed);
    printf("exits io=37 mmio=0 hlt=1 ns_per_exit=20000\n");
    return 0;
}
