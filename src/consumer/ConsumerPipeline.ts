import type { DeliveryState } from './DeliveryState';

/**
 * One step of a consumer's pipeline. It does its work and calls `next()` (at most once) to run the rest;
 * it may skip the rest (a duplicate), wrap it (a transaction) or handle what it throws (recovery).
 */
export type Stage = (state: DeliveryState, next: () => Promise<void>) => Promise<void>;

export type Pipeline = (state: DeliveryState) => Promise<void>;

const end: Pipeline = async () => undefined;

/**
 * Composes stages into one function, once per consumer at start-up; a delivery then runs through closures
 * that already exist (no per-message lookup of metadata, interceptors or options).
 */
export function composeStages(stages: readonly Stage[]): Pipeline {
  return stages.reduceRight<Pipeline>((next, stage) => (state) => stage(state, () => next(state)), end);
}
