/**
 * A worker's capacity shared by the hubs it serves, as a sans-IO core: which request the worker
 * serves now, which one waits, which one it declines, and which hub is offered room. It never
 * touches a socket or a timer: the worker tells it what arrived, what finished and what the
 * hubs said, and applies the {@linkcode SlotActions} it returns.
 *
 * The rules, in one place:
 * - The worker holds at most `capacity` requests in its slots (being served, or collected into
 *   a batch that has not started), across all hubs.
 * - A request takes a slot kept for its hub, else a free slot. When there is none, it waits
 *   only behind requests of its own hub, when its hub holds a slot and either it is its hub's
 *   turn, or its hub sent it as prefetch (the hub already has the capacity in this worker: it
 *   meant the request to wait) and no other hub is in line. A request that cannot be declined
 *   (from a gibbs hub, which has no such message) waits anyway. Any other request — one its hub
 *   meant to run at once, on a slot the worker gave to another hub — is declined at once, and its
 *   hub gets in line: our hub sends that worker nothing more until it is offered room.
 * - A freed slot goes to the oldest waiting request that cannot be declined; else to the next
 *   request of the hub that freed it; else, during that hub's turn, it is kept for that hub;
 *   else to the oldest waiting request.
 * - A declinable request never waits while its hub holds no slot (when the capacity went
 *   down): it is declined, since it would wait on another hub's requests.
 * - A free slot nothing waits for goes to the hubs in line, first come first served: the only
 *   hub in line, when no other hub has a turn, is told to resume (it sends as it did before);
 *   otherwise the first in line is offered the slot, kept for it: its turn begins. In its turn a
 *   hub sends what it has for the worker at once, then passes; the slots it freed meanwhile stay
 *   its own until it passes. A hub that sent something is back in line (its hub waits for room
 *   again); one that sent nothing is back to normal.
 *
 * So a worker never serves more than its capacity, a hub's request never waits on a slot the
 * worker gave to another hub (it waits behind its own hub's requests, or goes elsewhere), and
 * hubs that all want more than the worker can give take turns, without a decline each time.
 *
 * @module
 */

/** What the worker must do after a change, in this order. */
export interface SlotActions<L, J> {
  /** Requests given a slot: serve them (or add them to the batch being collected). */
  start: { link: L; job: J }[];
  /** Requests to decline: tell their hubs, which send them elsewhere. */
  decline: { link: L; job: J }[];
  /** Hubs offered a slot kept for them: tell them (a `room` message); their turn begins. */
  offer: L[];
  /** Hubs out of line: tell them to send as before (a `capacity` message). */
  resume: L[];
}

interface Entry<L, J> {
  link: L;
  job: J;
  declinable: boolean;
  /** Arrival order. */
  seq: number;
}

interface LinkSlots<L, J> {
  /** Slots its requests hold. */
  held: number;
  /** Slots kept for it (offered, or freed during its turn). */
  kept: number;
  /** Its requests waiting for a slot, oldest first. */
  waiting: Entry<L, J>[];
  /** In line for room: its hub sends nothing until offered some. */
  inLine: boolean;
  /** Its place in line (lowest first). */
  lineSeq: number;
  /** Offered room, and not passed since. */
  turn: boolean;
  /** It sent a request during its turn. */
  used: boolean;
}

/**
 * The slots of one worker, shared by its hubs (links `L`, requests `J`): see the module
 * documentation for the rules.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SlotLedger } from "./slots.ts";
 * const slots = new SlotLedger<string, string>(1);
 * assert.deepEqual(slots.arrive("hub A", "a1", true).start, [{ link: "hub A", job: "a1" }]);
 * // Full: hub A's next request waits behind its own, hub B's is declined.
 * assert.deepEqual(slots.arrive("hub A", "a2", true).start, []);
 * assert.deepEqual(slots.arrive("hub B", "b1", true).decline, [{ link: "hub B", job: "b1" }]);
 * // a1 done: a2 takes its slot; once a2 is done, hub B, alone in line, may send again.
 * assert.deepEqual(slots.release("hub A").start, [{ link: "hub A", job: "a2" }]);
 * assert.deepEqual(slots.release("hub A").resume, ["hub B"]);
 * ```
 */
export class SlotLedger<L, J> {
  #capacity: number;
  #held = 0;
  #reserved = 0;
  #peak = 0;
  #waiting = 0;
  /** Waiting requests that cannot be declined. */
  #firm = 0;
  #seq = 0;
  #lineSeq = 0;
  #frontSeq = 0;
  #links = new Map<L, LinkSlots<L, J>>();

  /** Creates the slots of a worker serving `capacity` requests at once. */
  constructor(capacity: number) {
    this.#capacity = checkCapacity(capacity);
  }

  /** Requests held at most at once. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Slots held now. */
  get held(): number {
    return this.#held;
  }

  /** Slots kept for hubs (offered, or freed during a turn). */
  get reserved(): number {
    return this.#reserved;
  }

  /** Most slots ever held at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Slots neither held nor kept (0 while the capacity is below what is held). */
  get free(): number {
    return Math.max(0, this.#capacity - this.#held - this.#reserved);
  }

  /** Requests waiting for a slot, of every hub. */
  get waiting(): number {
    return this.#waiting;
  }

  /** Slots the requests of `link` hold. */
  heldBy(link: L): number {
    return this.#links.get(link)?.held ?? 0;
  }

  /** Slots kept for `link`. */
  keptFor(link: L): number {
    return this.#links.get(link)?.kept ?? 0;
  }

  /** Requests of `link` waiting for a slot. */
  waitingFor(link: L): number {
    return this.#links.get(link)?.waiting.length ?? 0;
  }

  /** True while `link` is in line for room (its hub sends nothing meanwhile). */
  inLine(link: L): boolean {
    return this.#links.get(link)?.inLine ?? false;
  }

  /** True while `link` has its turn (offered room, not passed since). */
  hasTurn(link: L): boolean {
    return this.#links.get(link)?.turn ?? false;
  }

  /**
   * A request arrived from `link`. `declinable`: its hub understands a decline (one of ours).
   * The actions say whether it starts or is declined; otherwise it waits.
   */
  arrive(link: L, job: J, declinable: boolean): SlotActions<L, J> {
    const actions = noActions<L, J>();
    const slots = this.#slots(link);
    if (slots.kept > 0) {
      slots.kept--;
      this.#reserved--;
      slots.used = true;
      this.#take(link, slots, job, actions);
    } else if (this.#held + this.#reserved < this.#capacity) {
      // A free slot, so nothing waits and nobody is in line: it is this request's.
      this.#take(link, slots, job, actions);
    } else if (!declinable || (slots.held > 0 && (slots.turn || this.#prefetched(link, slots)))) {
      slots.waiting.push({ link, job, declinable, seq: this.#seq++ });
      this.#waiting++;
      if (!declinable) this.#firm++;
    } else {
      actions.decline.push({ link, job });
      this.#getInLine(slots, false);
    }
    return actions;
  }

  /** A request of `link` was answered: its slot is free. */
  release(link: L): SlotActions<L, J> {
    const slots = this.#links.get(link);
    if (slots === undefined || slots.held === 0) {
      throw new Error("released a slot that was not held");
    }
    slots.held--;
    this.#held--;
    const actions = this.#settle(link);
    this.#dropIfIdle(link, slots);
    return actions;
  }

  /**
   * `link`'s hub sent what it had for the room offered to it: its turn is over, and the slots
   * kept for it are free. Back in line if it sent something, else back to normal.
   */
  pass(link: L): SlotActions<L, J> {
    const slots = this.#links.get(link);
    if (slots === undefined || !slots.turn) return noActions(); // stale
    slots.turn = false;
    this.#reserved -= slots.kept;
    slots.kept = 0;
    if (slots.used) this.#getInLine(slots, false);
    slots.used = false;
    const actions = this.#settle(undefined);
    this.#dropIfIdle(link, slots);
    return actions;
  }

  /** The worker's capacity changed. */
  setCapacity(capacity: number): SlotActions<L, J> {
    this.#capacity = checkCapacity(capacity);
    return this.#settle(undefined);
  }

  /**
   * `link` was told the worker's capacity for another reason: its hub sends as before, so it
   * is out of line (what finds no slot is declined).
   */
  announced(link: L): void {
    const slots = this.#links.get(link);
    if (slots === undefined) return;
    slots.inLine = false;
    this.#dropIfIdle(link, slots);
  }

  /** Takes a waiting request of `link` out (a cancellation); undefined when none matches. */
  withdraw(link: L, matches: (job: J) => boolean): J | undefined {
    const slots = this.#links.get(link);
    if (slots === undefined) return undefined;
    const index = slots.waiting.findIndex((entry) => matches(entry.job));
    if (index < 0) return undefined;
    const [entry] = slots.waiting.splice(index, 1);
    this.#waiting--;
    if (!entry.declinable) this.#firm--;
    this.#dropIfIdle(link, slots);
    return entry.job;
  }

  /**
   * `link`'s connection ended: its waiting requests are returned in `dropped` (not to be
   * served), it is out of line, and the slots kept for it go to others. The slots its requests
   * hold stay held until released.
   */
  forget(link: L): { dropped: J[]; actions: SlotActions<L, J> } {
    const slots = this.#links.get(link);
    if (slots === undefined) return { dropped: [], actions: noActions() };
    const dropped = slots.waiting.map((entry) => entry.job);
    this.#waiting -= dropped.length;
    this.#firm -= slots.waiting.filter((entry) => !entry.declinable).length;
    slots.waiting = [];
    slots.inLine = slots.turn = slots.used = false;
    const hadKept = slots.kept > 0;
    this.#reserved -= slots.kept;
    slots.kept = 0;
    this.#dropIfIdle(link, slots);
    return { dropped, actions: hadKept ? this.#settle(undefined) : noActions() };
  }

  /**
   * The worker is stopping: every waiting request, of every hub, oldest first; nobody is in
   * line or has a turn any more.
   */
  drain(): { link: L; job: J }[] {
    const entries: Entry<L, J>[] = [];
    for (const [link, slots] of [...this.#links]) {
      entries.push(...slots.waiting);
      slots.waiting = [];
      slots.inLine = slots.turn = slots.used = false;
      slots.kept = 0;
      this.#dropIfIdle(link, slots);
    }
    this.#waiting = 0;
    this.#firm = 0;
    this.#reserved = 0;
    return entries.sort((a, b) => a.seq - b.seq).map(({ link, job }) => ({ link, job }));
  }

  #slots(link: L): LinkSlots<L, J> {
    let slots = this.#links.get(link);
    if (slots === undefined) {
      slots = {
        held: 0,
        kept: 0,
        waiting: [],
        inLine: false,
        lineSeq: 0,
        turn: false,
        used: false,
      };
      this.#links.set(link, slots);
    }
    return slots;
  }

  #dropIfIdle(link: L, slots: LinkSlots<L, J>): void {
    if (
      slots.held === 0 && slots.kept === 0 && slots.waiting.length === 0 && !slots.inLine &&
      !slots.turn
    ) this.#links.delete(link);
  }

  /**
   * A request its hub sent as prefetch — the hub already has the capacity in this worker, so
   * it meant the request to wait there — that may wait: nobody else is in line.
   */
  #prefetched(link: L, slots: LinkSlots<L, J>): boolean {
    return slots.held + slots.waiting.length >= this.#capacity && !this.#inLineBesides(link);
  }

  #inLineBesides(link: L): boolean {
    for (const [other, slots] of this.#links) if (other !== link && slots.inLine) return true;
    return false;
  }

  /** Puts a hub in line for room: at the back, or at the front when it was robbed of a slot. */
  #getInLine(slots: LinkSlots<L, J>, front: boolean): void {
    if (!slots.inLine || front) {
      slots.inLine = true;
      slots.lineSeq = front ? --this.#frontSeq : ++this.#lineSeq;
    }
  }

  #take(link: L, slots: LinkSlots<L, J>, job: J, actions: SlotActions<L, J>): void {
    slots.held++;
    this.#held++;
    if (this.#held > this.#peak) this.#peak = this.#held;
    actions.start.push({ link, job });
  }

  /**
   * Gives free slots to waiting requests (or keeps them for the hub whose turn it is),
   * declines what would wait on others, and offers what is left to the hubs in line.
   */
  #settle(freed: L | undefined): SlotActions<L, J> {
    const actions = noActions<L, J>();
    // A lowered capacity may leave no slot to keep: those hubs lose them, and since their hub
    // may have sent nothing yet, they wait at the front of the line.
    while (this.#reserved > Math.max(0, this.#capacity - this.#held)) {
      for (const slots of this.#links.values()) {
        if (slots.kept > 0) {
          slots.kept--;
          this.#reserved--;
          if (slots.kept === 0 && !slots.used) {
            // Its turn had not begun: it cannot begin now.
            slots.turn = false;
            this.#getInLine(slots, true);
          }
          break;
        }
      }
    }
    let freedBy = freed === undefined ? undefined : this.#links.get(freed);
    while (this.#held + this.#reserved < this.#capacity) {
      const firm = this.#firm > 0 ? this.#oldest((entry) => !entry.declinable) : undefined;
      const entry = firm ?? freedBy?.waiting[0];
      if (entry === undefined && freedBy?.turn) {
        // Freed during its hub's turn: still its hub's.
        freedBy.kept++;
        this.#reserved++;
        freedBy = undefined;
        continue;
      }
      const next = entry ?? this.#oldest(() => true);
      if (next === undefined) break;
      const slots = this.#links.get(next.link)!;
      if (slots.waiting[0] === next) slots.waiting.shift();
      else slots.waiting.splice(slots.waiting.indexOf(next), 1);
      this.#waiting--;
      if (!next.declinable) this.#firm--;
      this.#take(next.link, slots, next.job, actions);
    }
    if (this.#held + this.#reserved >= this.#capacity) {
      for (const [link, slots] of this.#links) {
        if (slots.held > 0 || !slots.waiting.some((e) => e.declinable)) continue;
        slots.waiting = slots.waiting.filter((entry) => {
          if (!entry.declinable) return true;
          actions.decline.push({ link, job: entry.job });
          this.#waiting--;
          return false;
        });
        this.#getInLine(slots, false);
      }
      return actions;
    }
    // Free slots, nothing waiting: to the hubs in line.
    let inLine = 0;
    let turns = false;
    for (const slots of this.#links.values()) {
      if (slots.inLine) inLine++;
      if (slots.turn) turns = true;
    }
    if (inLine === 0) return actions;
    // (One in line that still has a turn, after the capacity went down, waits for its pass.)
    const line = [...this.#links].filter(([, s]) => s.inLine && !s.turn).sort((a, b) =>
      a[1].lineSeq - b[1].lineSeq
    );
    if (line.length === 1 && !turns) {
      const [link, slots] = line[0];
      slots.inLine = false;
      actions.resume.push(link);
      return actions;
    }
    for (const [link, slots] of line) {
      if (this.#held + this.#reserved >= this.#capacity) break;
      slots.inLine = false;
      slots.turn = true;
      slots.used = false;
      slots.kept++;
      this.#reserved++;
      actions.offer.push(link);
    }
    return actions;
  }

  /** The oldest waiting request that `accepts`. */
  #oldest(accepts: (entry: Entry<L, J>) => boolean): Entry<L, J> | undefined {
    let oldest: Entry<L, J> | undefined;
    for (const slots of this.#links.values()) {
      for (const entry of slots.waiting) {
        if (accepts(entry) && (oldest === undefined || entry.seq < oldest.seq)) oldest = entry;
      }
    }
    return oldest;
  }
}

function noActions<L, J>(): SlotActions<L, J> {
  return { start: [], decline: [], offer: [], resume: [] };
}

function checkCapacity(capacity: number): number {
  if (!(Number.isInteger(capacity) && capacity >= 1)) {
    throw new RangeError(`capacity must be an integer >= 1, got ${capacity}`);
  }
  return capacity;
}
