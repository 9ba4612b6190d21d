/*
 * virtio_pci.h: virtio devices as PCI functions (virtio 1.2, 4.1).
 *
 * Modern (non-transitional) devices only: vendor 0x1AF4, device 0x1040 +
 * the virtio device ID, revision 1.  The registers the driver needs are
 * found through vendor-specific capabilities, each naming a BAR, an offset
 * and a length.  Ours all live in BAR 0:
 *
 *	0x0000	common configuration (features, status, queue setup)
 *	0x1000	ISR status (one byte, read to clear)
 *	0x2000	device-specific configuration (ops->config_size bytes)
 *	0x3000	queue notify: 4 bytes per queue, bound to ioeventfds
 *
 * BAR 1 holds the MSI-X table (n_queues + 1 vectors: one per queue and
 * one for configuration changes, the split Linux asks for first) and PBA,
 * and BAR 2, in port space, the same doorbells again (4 ports per queue),
 * named first: a port write is a cheaper exit than a memory write.
 * A PCI_CFG capability gives the driver a window onto the BARs through
 * config space, as the spec requires.
 */
#ifndef VIRTIO_PCI_H
#define VIRTIO_PCI_H

#include "virtio/virtio.h"

struct pci_dev;

#define VIRTIO_PCI_VENDOR		0x1AF4
#define VIRTIO_PCI_DEVICE_BASE		0x1040	/* + device ID */
#define VIRTIO_PCI_SUBSYS_ID		0x1100	/* any value >= 0x40 (4.1.2.1) */

/* Capability cfg_type values (4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG	1
#define VIRTIO_PCI_CAP_NOTIFY_CFG	2
#define VIRTIO_PCI_CAP_ISR_CFG		3
#define VIRTIO_PCI_CAP_DEVICE_CFG	4
#define VIRTIO_PCI_CAP_PCI_CFG		5
/* struct virtio_pci_cap: vndr, next, len, cfg_type, bar, id, pad[2],
 * le32 offset, le32 length; NOTIFY adds le32 notify_off_multiplier,
 * PCI_CFG adds u8 pci_cfg_data[4]. */
#define VIRTIO_PCI_CAP_BAR		4
#define VIRTIO_PCI_CAP_OFFSET		8
#define VIRTIO_PCI_CAP_LENGTH		12
#define VIRTIO_PCI_CAP_EXTRA		16

/* Common configuration layout (4.1.4.3). */
#define VIRTIO_PCI_COMMON_DFSELECT	0x00
#define VIRTIO_PCI_COMMON_DF		0x04
#define VIRTIO_PCI_COMMON_GFSELECT	0x08
#define VIRTIO_PCI_COMMON_GF		0x0c
#define VIRTIO_PCI_COMMON_MSIX		0x10
#define VIRTIO_PCI_COMMON_NUMQ		0x12
#define VIRTIO_PCI_COMMON_STATUS	0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION	0x15
#define VIRTIO_PCI_COMMON_Q_SELECT	0x16
#define VIRTIO_PCI_COMMON_Q_SIZE	0x18
#define VIRTIO_PCI_COMMON_Q_MSIX	0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE	0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF	0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO	0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI	0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO	0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI	0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO	0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI	0x34
#define VIRTIO_PCI_COMMON_LEN		0x38

#define VIRTIO_PCI_ISR_QUEUE		1
#define VIRTIO_PCI_ISR_CONFIG		2
#define VIRTIO_MSI_NO_VECTOR		0xffff

/* Our BAR layout (see above). */
#define VIRTIO_PCI_BAR			0
#define VIRTIO_PCI_MSIX_BAR		1
#define VIRTIO_PCI_NOTIFY_BAR		2
#define VIRTIO_PCI_COMMON_OFF		0x0000
#define VIRTIO_PCI_ISR_OFF		0x1000
#define VIRTIO_PCI_DEVICE_OFF		0x2000
#define VIRTIO_PCI_NOTIFY_OFF		0x3000
#define VIRTIO_PCI_REGION_SIZE		0x1000
#define VIRTIO_PCI_BAR_SIZE		0x4000
#define VIRTIO_PCI_NOTIFY_MULT		4
#define VIRTIO_PCI_NOTIFY_BAR_SIZE	(VIRTIO_MAX_QUEUES * VIRTIO_PCI_NOTIFY_MULT)

/*
 * Put dev on the PCI bus.  dev->ops, dev->priv and dev->gm must be set;
 * this fills dev->transport, dev->signal, dev->needs_reset and each
 * queue's kick_fd (an eventfd the device's thread waits on; the guest's
 * notify writes reach it through ioeventfd without an exit).  Call after
 * pci_init().  -1 with last_error() set.
 */
int virtio_pci_add(struct virtio_dev *dev);

/* Take it off the bus: stops the device (ops->reset), closes the eventfds
 * and frees the transport.  With the vCPUs stopped (shutdown, tests). */
void virtio_pci_remove(struct virtio_dev *dev);

/* The PCI function behind dev (tests, the fuzzer). */
struct pci_dev *virtio_pci_dev(struct virtio_dev *dev);

#endif
