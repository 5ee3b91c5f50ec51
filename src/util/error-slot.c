/* First-failure capture across threads: a mutex guards the message, an
 * atomic flag lets workers poll for it without the lock. */
#include "error-slot.h"

#include <stdio.h>

#include "error.h"

void error_slot_init(struct error_slot *slot)
{
  pthread_mutex_init(&slot->lock, NULL);
  atomic_store(&slot->failed, 0);
  slot->errnum = 0;
  slot->msg[0] = 0;
}

void error_slot_destroy(struct error_slot *slot)
{
  pthread_mutex_destroy(&slot->lock);
}

void error_slot_set_from_current(struct error_slot *slot)
{
  pthread_mutex_lock(&slot->lock);
  if (!atomic_load(&slot->failed)) {
    snprintf(slot->msg, sizeof slot->msg, "%s", get_error());
    slot->errnum = get_errno();
    atomic_store(&slot->failed, 1);
  }
  pthread_mutex_unlock(&slot->lock);
}

int error_slot_failed(struct error_slot *slot)
{
  return atomic_load(&slot->failed);
}

int error_slot_restore(struct error_slot *slot)
{
  int ret = 0;
  pthread_mutex_lock(&slot->lock);
  if (atomic_load(&slot->failed)) {
    set_error_msg(slot->errnum, slot->msg);
    ret = -1;
  }
  pthread_mutex_unlock(&slot->lock);
  return ret;
}
