#!/usr/bin/env python3
# tests/e2e/kvm-hold.py: hold one idle KVM VM (one vCPU, never run) until
# killed.  Run in the background by the nested test machine (nested.sh).
#
# Why: creating and destroying a VM flips static keys in the outer kernel
# (preempt notifiers on VM creation; "APIC software-disabled" on a vCPU's
# creation, on its guest enabling the APIC, and again a second later),
# and each flip patches live kernel text with int3 and a cross-CPU sync.
# Under QEMU's TCG that patching sometimes never completes: the machine
# hangs with one CPU in exc_int3 and the other waiting for it (seen twice
# in an hour of nested runs on 2026-12-03).  While this VM lives, those
# keys stay raised, so the guests the tests start and stop flip none.
import fcntl
import os
import signal

KVM_CREATE_VM = 0xAE01
KVM_CREATE_IRQCHIP = 0xAE60
KVM_CREATE_VCPU = 0xAE41

kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
fcntl.ioctl(vm, KVM_CREATE_IRQCHIP, 0)     # so the vCPU gets an in-kernel APIC
vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
signal.pause()
