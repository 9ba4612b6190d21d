/*
 * vm.h: the virtual machine and its vCPUs: the only code that calls KVM.
 *
 * main() creates the VM around guest RAM while the boot loader fills that
 * RAM, points the vCPUs at the kernel's entry, and calls vm_run_vcpus().  Each
 * vCPU is a thread looping on KVM_RUN, turning port and MMIO exits into
 * bus_access() calls.  Anyone may ask the VM to stop (the guest rebooting,
 * a signal, Ctrl-A x); vm_run_vcpus() then returns the exit status.
 */
#ifndef VM_H
#define VM_H

#include "guest_mem.h"
#include "x86/boot.h"

#define VM_MAX_CPUS 64

struct vm;

/* Open /dev/kvm, check the API and capabilities, create the VM with its
 * interrupt controllers, PIT, memory and vCPUs.  -1 with last_error() set. */
int vm_create(struct guest_mem *gm, int ncpus);
/*
 * The same, on a thread of its own while the caller loads the kernel:
 * vm_create_begin() starts it, vm_create_end() waits for it and returns
 * what vm_create() did (its error in last_error()).
 */
void vm_create_begin(struct guest_mem *gm, int ncpus);
int vm_create_end(void);
/* Point the boot CPU at the kernel's entry, be. */
int vm_setup_vcpus(const struct boot_entry *be);
/*
 * Start the vCPUs and call serve(stop_fd) on this thread; serve returns
 * once stop_fd is readable (someone called vm_stop()).  Returns the status
 * passed to vm_stop().
 */
int vm_run_vcpus(void (*serve)(int stop_fd));
/* Ask the VM to stop with this exit status (first caller wins). */
void vm_stop(int status);
/* For a guest that seems stuck (SIGUSR2): each vCPU prints on stderr
 * where it stands (registers, halted or not, its APIC timer, interrupts
 * waiting); the guest carries on. */
void vm_dump(void);
/* eventfd that becomes readable once vm_stop() was called. */
int vm_stop_fd(void);
/* True when /dev/kvm cannot run a stock kernel natively (PVM, no vmx/svm). */
bool host_kvm_is_software(void);

#endif
