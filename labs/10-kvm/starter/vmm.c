/*
 * vmm.c: a virtual machine monitor on /dev/kvm (lab 10, steps 5 to 8).
 *
 * Build: cc -O2 -Wall -o vmm vmm.c
 * Run:   ./vmm real|long GUEST
 *
 * What the guest expects of its machine (README, "The machine your VMM builds"):
 * - 64 KiB of RAM at guest-physical address 0, and nothing else: every
 *   other address is unbacked, where MMIO devices live;
 * - the image file loaded at 0x1000, where the vCPU starts;
 * - port 0x11 (in): the next byte of stdin;
 * - port 0x10 (out): the byte, written to stdout as it is;
 * - a write to unbacked memory: a line "mmio ADDR LEN VALUE" on stdout;
 * - hlt: a line "exits io=N mmio=N hlt=N ns_per_exit=N" on stdout, then exit 0.
 * Anything else you want to print goes to stderr.
 *
 * The reference for every ioctl: the kernel's Documentation/virt/kvm/api.rst.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MEM_SIZE 0x10000
#define LOAD_ADDR 0x1000
#define PAGE_TABLES 0x8000 /* free for your page tables (step 7): the guest uses 0x1000-0x7fff */

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Step 5: real mode. After KVM_CREATE_VCPU the vCPU is in the state of a
 * CPU after reset: CS points near the top of 4 GiB. Make CS address 0. */
static void real_mode(int vcpu)
{
    (void)vcpu;
    /* TODO: KVM_GET_SREGS, set cs.base and cs.selector, KVM_SET_SREGS. */
}

/* Step 7: long mode. Build page tables in guest memory (at PAGE_TABLES)
 * that map the guest's addresses to the same physical addresses, then set
 * CR3, CR4, CR0, EFER and 64-bit segments in the special registers. */
static void long_mode(int vcpu, uint8_t *mem)
{
    (void)vcpu;
    (void)mem;
    fprintf(stderr, "vmm: TODO: long mode\n");
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "real") && strcmp(argv[1], "long"))) {
        fprintf(stderr, "usage: %s real|long GUEST\n", argv[0]);
        return 2;
    }

    /* TODO: open /dev/kvm; check KVM_GET_API_VERSION; KVM_CREATE_VM. */
    int kvm = -1, vm = -1;

    /* Guest memory: anonymous memory of this process that KVM maps into the guest. */
    uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        die("mmap guest memory");
    FILE *guest = fopen(argv[2], "rb");
    if (!guest)
        die(argv[2]);
    size_t n = fread(mem + LOAD_ADDR, 1, PAGE_TABLES - LOAD_ADDR, guest);
    fclose(guest);
    if (n == 0) {
        fprintf(stderr, "%s: empty\n", argv[2]);
        return 1;
    }

    /* TODO: KVM_SET_USER_MEMORY_REGION: slot 0, guest-physical 0, MEM_SIZE bytes at mem. */

    /* TODO: KVM_CREATE_VCPU; KVM_GET_VCPU_MMAP_SIZE (on the /dev/kvm fd);
     * mmap that many bytes of the vCPU fd: the struct kvm_run KVM fills in
     * at every exit. */
    int vcpu = -1;
    struct kvm_run *run = NULL;
    (void)kvm;
    (void)vm;

    if (strcmp(argv[1], "long") == 0)
        long_mode(vcpu, mem);
    else
        real_mode(vcpu);

    /* TODO: KVM_SET_REGS: rip = LOAD_ADDR, rflags = 0x2 (bit 1 is always set). */

    if (run == NULL) {
        fprintf(stderr, "vmm: TODO: create the VM and its vCPU\n");
        return 1;
    }
    unsigned long io = 0, mmio = 0, hlt = 0;
    for (;;) {
        uint64_t t0 = now_ns();
        /* TODO: KVM_RUN (a signal may interrupt it: EINTR, then run again). */
        uint64_t took = now_ns() - t0;
        (void)took; /* step 8: time the round trips of the exits on port 0x12 */
        switch (run->exit_reason) {
        case KVM_EXIT_IO:
            io++;
            /* TODO: run->io says the port, the direction, the size and the
             * count; the data is at (uint8_t *)run + run->io.data_offset. */
            break;
        case KVM_EXIT_MMIO:
            mmio++;
            /* TODO (step 6): run->mmio: phys_addr, len, is_write, data. */
            break;
        case KVM_EXIT_HLT:
            hlt++;
            printf("exits io=%lu mmio=%lu hlt=%lu ns_per_exit=%d\n", io, mmio, hlt, 0);
            return 0;
        default:
            fprintf(stderr, "vmm: unexpected exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
}
