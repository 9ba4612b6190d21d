/*
 * i8042.c: the PC keyboard controller, for one reason: reset.
 *
 * `reboot=k` makes Linux reboot by pulsing the CPU reset line through
 * this controller (command 0xfe on port 0x64).  That is how a guest tells
 * us it is done, so it ends the launcher with status 0.
 *
 * Linux also probes the controller at boot; a controller that never
 * answers costs half a second of timeouts.  So we answer the handful of
 * controller commands the probe sends, and report no keyboard or mouse.
 */
#include "dev/legacy.h"
#include "bus/bus.h"

#include <pthread.h>

#define I8042_DATA	0x60
#define I8042_CMD	0x64

#define STATUS_OBF	0x01	/* a byte waits in the output buffer */
#define STATUS_SYS	0x04	/* self-test passed */
#define STATUS_CMD	0x08	/* last write was a command */
#define STATUS_UNLOCKED	0x10	/* keyboard not inhibited by the keylock */

#define CMD_READ_CTR	0x20
#define CMD_WRITE_CTR	0x60
#define CMD_AUX_DISABLE	0xa7
#define CMD_AUX_ENABLE	0xa8
#define CMD_AUX_TEST	0xa9
#define CMD_SELF_TEST	0xaa
#define CMD_KBD_TEST	0xab
#define CMD_KBD_DISABLE	0xad
#define CMD_KBD_ENABLE	0xae
#define CMD_RESET	0xfe

/* The two ports' opaque pointers: which port an access hit. */
static u8 port_tags[2];
#define KBC_DATA_PORT	(&port_tags[0])
#define KBC_CMD_PORT	(&port_tags[1])

static struct {
	pthread_mutex_t lock;
	u8 status, ctr, out, pending_cmd;
	void (*reset)(void);
} kbc = { .lock = PTHREAD_MUTEX_INITIALIZER, .status = STATUS_SYS | STATUS_UNLOCKED, .ctr = 0x30 };

static void kbc_reply(u8 byte)
{
	kbc.out = byte;
	kbc.status |= STATUS_OBF;
}

static void kbc_command(u8 cmd)
{
	kbc.status |= STATUS_CMD;
	switch (cmd) {
	case CMD_READ_CTR:
		kbc_reply(kbc.ctr);
		break;
	case CMD_WRITE_CTR:
		kbc.pending_cmd = cmd;
		break;
	case CMD_SELF_TEST:
		kbc_reply(0x55);
		break;
	case CMD_KBD_TEST:
	case CMD_AUX_TEST:
		/* 0xff: "interface failed": no keyboard, no mouse here. */
		kbc_reply(0xff);
		break;
	case CMD_KBD_DISABLE:
		kbc.ctr |= 0x10;
		break;
	case CMD_KBD_ENABLE:
		kbc.ctr &= ~0x10;
		break;
	case CMD_AUX_DISABLE:
		kbc.ctr |= 0x20;
		break;
	case CMD_AUX_ENABLE:
		kbc.ctr &= ~0x20;
		break;
	case CMD_RESET:
		verbose("i8042: the guest pulsed the reset line");
		kbc.reset();
		break;
	}
}

static void kbc_read(void *opaque, u64 offset, void *data, u32 len)
{
	u8 v;

	pthread_mutex_lock(&kbc.lock);
	if (opaque == KBC_CMD_PORT) {
		v = kbc.status;
	} else {
		v = kbc.out;
		kbc.status &= ~STATUS_OBF;
	}
	pthread_mutex_unlock(&kbc.lock);
	for (u32 i = 0; i < len; i++)
		((u8 *)data)[i] = i ? 0xff : v;
}

static void kbc_write(void *opaque, u64 offset, const void *data, u32 len)
{
	u8 v = *(const u8 *)data;

	pthread_mutex_lock(&kbc.lock);
	if (opaque == KBC_CMD_PORT) {
		kbc_command(v);
	} else {
		kbc.status &= ~STATUS_CMD;
		if (kbc.pending_cmd == CMD_WRITE_CTR)
			kbc.ctr = v;
		/* Bytes for the (absent) keyboard go nowhere. */
		kbc.pending_cmd = 0;
	}
	pthread_mutex_unlock(&kbc.lock);
}

static const struct bus_ops kbc_ops = { .read = kbc_read, .write = kbc_write };

int i8042_create(void (*reset)(void))
{
	kbc.reset = reset;
	/* Two one-byte ports, told apart by their opaque pointer: 0x61 in
	 * between is the PIT's speaker port, which KVM serves itself. */
	return bus_register(BUS_PIO, I8042_DATA, 1, &kbc_ops, KBC_DATA_PORT, "i8042 data") ||
	       bus_register(BUS_PIO, I8042_CMD, 1, &kbc_ops, KBC_CMD_PORT, "i8042 command");
}
