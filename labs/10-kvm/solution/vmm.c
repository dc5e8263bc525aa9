/*
 * vmm.c: a virtual machine monitor on /dev/kvm (lab 10, solution).
 *
 * Build: cc -O2 -Wall -o vmm vmm.c
 * Run:   ./vmm real|long GUEST
 *
 * The guest gets 64 KiB of RAM at guest-physical 0, its image loaded at
 * 0x1000, where it starts. Port 0x11 in: the next byte of stdin. Port 0x10
 * out: the byte to stdout. A write to unbacked memory (MMIO): a line
 * "mmio ADDR LEN VALUE". On hlt: "exits io=N mmio=N hlt=N ns_per_exit=N".
 * The ioctls are described in the kernel's Documentation/virt/kvm/api.rst.
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
#define PAGE_TABLES 0x8000 /* PML4, PDPT, PD: three pages the guest does not use */

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

/* Real mode: every segment based at 0, so guest addresses are physical. */
static void real_mode(int vcpu)
{
    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
        die("KVM_GET_SREGS");
    s.cs.base = 0;
    s.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
        die("KVM_SET_SREGS");
}

/* Long mode: identity-map the first 2 MiB with one large page, then turn on
 * PAE, long mode and paging together, with a 64-bit code segment. */
static void long_mode(int vcpu, uint8_t *mem)
{
    uint64_t *pml4 = (uint64_t *)(mem + PAGE_TABLES);
    uint64_t *pdpt = (uint64_t *)(mem + PAGE_TABLES + 0x1000);
    uint64_t *pd = (uint64_t *)(mem + PAGE_TABLES + 0x2000);
    pml4[0] = (PAGE_TABLES + 0x1000) | 0x3; /* present | writable */
    pdpt[0] = (PAGE_TABLES + 0x2000) | 0x3;
    pd[0] = 0x0 | 0x83;                     /* present | writable | 2 MiB page */

    struct kvm_sregs s;
    if (ioctl(vcpu, KVM_GET_SREGS, &s) < 0)
        die("KVM_GET_SREGS");
    s.cr3 = PAGE_TABLES;
    s.cr4 = 1u << 5;                 /* PAE */
    s.cr0 = 1u | (1u << 31);         /* PE | PG */
    s.efer = (1u << 8) | (1u << 10); /* LME | LMA */
    struct kvm_segment seg = {
        .base = 0, .limit = 0xffffffff, .selector = 1 << 3, .present = 1,
        .type = 11, /* code: execute, read, accessed */
        .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
    };
    s.cs = seg;
    seg.type = 3; /* data: read, write, accessed */
    seg.selector = 2 << 3;
    seg.l = 0;
    seg.db = 1;
    s.ds = s.es = s.fs = s.gs = s.ss = seg;
    if (ioctl(vcpu, KVM_SET_SREGS, &s) < 0)
        die("KVM_SET_SREGS");
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "real") && strcmp(argv[1], "long"))) {
        fprintf(stderr, "usage: %s real|long GUEST\n", argv[0]);
        return 2;
    }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        die("/dev/kvm");
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr, "this kernel's KVM API is not version %d\n", KVM_API_VERSION);
        return 1;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        die("KVM_CREATE_VM");

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
    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = 0,
        .memory_size = MEM_SIZE,
        .userspace_addr = (uint64_t)(uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        die("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        die("mmap kvm_run");

    if (strcmp(argv[1], "long") == 0)
        long_mode(vcpu, mem);
    else
        real_mode(vcpu);
    struct kvm_regs regs = { .rip = LOAD_ADDR, .rflags = 0x2 };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        die("KVM_SET_REGS");

    unsigned long io = 0, mmio = 0, hlt = 0, timed = 0;
    uint64_t timed_ns = 0;
    for (;;) {
        uint64_t t0 = now_ns();
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            die("KVM_RUN");
        }
        uint64_t took = now_ns() - t0;
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            io++;
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
                if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x10) {
                    fwrite(data, 1, run->io.size, stdout);
                } else if (run->io.direction == KVM_EXIT_IO_IN && run->io.port == 0x11) {
                    fflush(stdout);
                    int c = getchar();
                    memset(data, c == EOF ? 0xff : c, run->io.size);
                } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x12) {
                    timed++;
                    timed_ns += took;
                }
            }
            break;
        }
        case KVM_EXIT_MMIO:
            mmio++;
            if (run->mmio.is_write) {
                uint64_t value = 0;
                memcpy(&value, run->mmio.data, run->mmio.len);
                printf("mmio %#llx %u %#llx\n", (unsigned long long)run->mmio.phys_addr, run->mmio.len,
                       (unsigned long long)value);
            } else {
                memset(run->mmio.data, 0xff, run->mmio.len); /* no device answers: all ones */
            }
            break;
        case KVM_EXIT_HLT:
            hlt++;
            printf("exits io=%lu mmio=%lu hlt=%lu ns_per_exit=%llu\n", io, mmio, hlt,
                   (unsigned long long)(timed ? timed_ns / timed : 0));
            return 0;
        default:
            fprintf(stderr, "vmm: unexpected exit reason %u\n", run->exit_reason);
            return 1;
        }
    }
}
