// When to send what: a burst of `count` tasks at `rate` per second, in batches no larger than
// the API's BATCH_MAX. rate 0 = as fast as the API answers (one full batch after another).

export type Slot = { at: number; size: number }; // at: ms after the start

export const SLOT_MS = 100;

export function planBurst(count: number, rate: number, batchMax: number): Slot[] {
  const slots: Slot[] = [];
  if (rate <= 0) {
    for (let left = count; left > 0; left -= batchMax) slots.push({ at: 0, size: Math.min(left, batchMax) });
    return slots;
  }
  // task i is due at i / rate seconds; tasks due in the same 100 ms slot travel together
  let i = 0;
  while (i < count) {
    const slot = Math.floor((i / rate) * 1000 / SLOT_MS);
    let size = 0;
    while (i < count && size < batchMax && Math.floor((i / rate) * 1000 / SLOT_MS) === slot) {
      size += 1;
      i += 1;
    }
    slots.push({ at: slot * SLOT_MS, size });
  }
  return slots;
}

/** How many tasks a steady stream at `rate`/s owes after `elapsedMs`, given `sent` so far. */
export function streamDue(rate: number, elapsedMs: number, sent: number, batchMax: number): number {
  const due = Math.floor((rate * elapsedMs) / 1000) - sent;
  return Math.max(0, Math.min(due, batchMax));
}
