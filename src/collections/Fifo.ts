/**
 * A first-in first-out queue whose shift() is O(1) amortized at any length. (V8's Array.prototype.shift
 * moves every element once an array is past about 16k elements, as it then lives in large-object space:
 * 4–64 µs per shift at 100,000 elements, so draining a backlog became quadratic.)
 *
 * Items are taken from a head index; the array is compacted once the taken part is 1,024 items or more and at
 * least half of it.
 * unshift() puts an item back at the head (a requeue), in O(1) when something was taken before.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The item shift() would return next, without taking it. */
  peek(): T | undefined {
    return this.head < this.items.length ? this.items[this.head] : undefined;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined; // no reference kept to what was taken
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  unshift(item: T): void {
    if (this.head > 0) this.items[--this.head] = item;
    else this.items.unshift(item);
  }

  /** Takes every item, in order. */
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}
