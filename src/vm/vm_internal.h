/*
 * vm_internal.h: state shared by vm.c, vcpu.c and irq.c (the KVM layer).
 */
#ifndef VM_INTERNAL_H
#define VM_INTERNAL_H

#include "vm/vm.h"

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>

struct vcpu {
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	atomic_bool dump_wanted;	/* vm_dump() asked; the thread prints */
};

struct vm_state {
	int kvm_fd, vm_fd;
	struct guest_mem *gm;
	int ncpus;
	struct vcpu vcpus[VM_MAX_CPUS];
	int run_size;

	_Atomic u64 first_run_ns;	/* when vCPU 0 first entered KVM_RUN */

	int stop_fd;
	pthread_mutex_t stop_lock;
	bool stopping;
	int exit_status;
};

extern struct vm_state vm;

int irq_routing_init(void);
/* vcpu.c: create vm.ncpus vCPUs (vm_create's last step). */
int vcpus_create(void);

#endif
