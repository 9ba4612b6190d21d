/*
 * acpi.h: just enough ACPI for a stock kernel to find its CPUs, its PCI
 * bus and its off switch, and to tell us when it panics.
 *
 * acpi_build() writes the tables into the reserved area below 1 MiB:
 *
 *   RSDP -> XSDT -> FADT -> DSDT     \_S5, PCI0 (+ _PRT), pvpanic device
 *                |       -> FACS
 *                -> MADT             local APICs, IOAPIC, SCI override
 *
 * The FADT describes full ACPI hardware (not HW_REDUCED), so Linux shuts
 * down the classic way: it writes SLP_TYP (our \_S5 value) and SLP_EN to
 * the PM1a control register.  acpi_pm_create() puts that register, with
 * the PM1 event block and the PM timer, on the port bus.
 *
 * pvpanic: QEMU's ISA flavour, one byte at port 0x505, described in the
 * DSDT as ACPI device QEMU0001 so Linux's pvpanic-mmio driver binds to it.
 * A read tells which events we take (PANICKED); a write of PANICKED means
 * the guest kernel panicked.
 */
#ifndef X86_ACPI_H
#define X86_ACPI_H

#include "guest_mem.h"

/* The fixed-hardware registers we put in the FADT (I/O ports). */
#define ACPI_PM1_EVT_PORT	0x600	/* PM1a_EVT_BLK: status (2), enable (2) */
#define ACPI_PM1_CNT_PORT	0x604	/* PM1a_CNT_BLK: control (2) */
#define ACPI_PM_TMR_PORT	0x608	/* PM_TMR_BLK: 24-bit timer (4) */
#define ACPI_PM_PORTS		12	/* 0x600..0x60b, one bus range */
#define ACPI_SCI_IRQ		9	/* never raised; level, active high */
#define ACPI_S5_SLP_TYP		5	/* \_S5's SLP_TYPa: "power off" */

#define PVPANIC_PORT		0x505
#define PVPANIC_PANICKED	0x01	/* event bit: the guest panicked */
#define PVPANIC_CRASH_LOADED	0x02	/* event bit: a crash kernel took over */

/* At most this many CPUs: APIC ids are one byte and the IOAPIC takes the
 * id after the last CPU. */
#define ACPI_MAX_CPUS		254

/*
 * Write RSDP (at BOOT_ACPI_ADDR), XSDT, FADT, FACS, DSDT and MADT for
 * ncpus CPUs into guest memory; *rsdp_gpa says where the RSDP went (for
 * boot_params.acpi_rsdp_addr).  -1 with last_error() set.
 */
int acpi_build(struct guest_mem *gm, int ncpus, u64 *rsdp_gpa);

/*
 * The PM1 event/control registers and PM timer on the port bus.  poweroff
 * runs (on the vCPU thread that wrote it) when the guest enters S5; it
 * must only ask the VM to stop.  -1 with last_error() set.
 */
int acpi_pm_create(void (*poweroff)(void));

/*
 * The pvpanic port; panicked runs (on a vCPU thread) when the guest
 * reports a panic, and must only ask the VM to stop.
 */
int pvpanic_create(void (*panicked)(void));

#endif
