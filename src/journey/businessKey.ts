import { ConfigurationError } from '../errors';

const PATH = /^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*)*$/;

/** Checks `journey.businessKeys`: dotted property paths into the payload (`orderId`, `customer.id`). */
export function checkBusinessKeyPaths(paths: readonly string[], where = 'journey.businessKeys'): string[][] {
  return paths.map((p, i) => {
    if (typeof p !== 'string' || !PATH.test(p)) throw new ConfigurationError(`${where}.${i}`, `must be a dotted property path like "orderId" or "customer.id", got ${JSON.stringify(p)}`);
    return p.split('.');
  });
}

/**
 * The business key of a payload: the value at the first of `paths` that holds a string, number or bigint
 * (as text, at most 255 characters), else null. Reads own properties only; never throws.
 */
export function businessKeyOf(payload: unknown, paths: readonly (readonly string[])[]): string | null {
  for (const path of paths) {
    let v: unknown = payload;
    for (const key of path) {
      if (v === null || typeof v !== 'object' || !Object.prototype.hasOwnProperty.call(v, key)) {
        v = undefined;
        break;
      }
      v = (v as Record<string, unknown>)[key];
    }
    if ((typeof v === 'string' && v !== '') || (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'bigint') return String(v).slice(0, 255);
  }
  return null;
}
