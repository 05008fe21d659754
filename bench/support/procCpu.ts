/**
 * CPU time of the processes a benchmark shares the machine with, read from /proc (Linux): this process,
 * PostgreSQL (every backend and helper), RabbitMQ (beam.smp) and the rest. A benchmark takes a snapshot
 * before and after one side of a round; the difference says where that side's CPU went.
 */
import { readFileSync, readdirSync } from 'node:fs';

export type CpuGroups = Record<'self' | 'postgres' | 'rabbitmq' | 'other', number>;

const TICK_MS = 10; // USER_HZ is 100 on Linux

function groupOf(pid: number, comm: string): keyof CpuGroups {
  if (pid === process.pid) return 'self';
  if (comm === 'postgres' || comm.startsWith('postgres')) return 'postgres';
  if (comm === 'beam.smp' || comm.startsWith('erl_child') || comm === 'epmd' || comm === 'inet_gethost') return 'rabbitmq';
  return 'other';
}

/** CPU milliseconds used so far by each group, or undefined where /proc cannot be read. */
export function cpuSnapshot(): CpuGroups | undefined {
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return undefined;
  }
  const out: CpuGroups = { self: 0, postgres: 0, rabbitmq: 0, other: 0 };
  for (const p of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // fields[0] is state (field 3); utime and stime are fields 14 and 15 of the line.
    const ticks = Number(fields[11]) + Number(fields[12]);
    out[groupOf(Number(p), comm)] += ticks * TICK_MS;
  }
  return out;
}

/** CPU milliseconds per group between two snapshots (processes that exited meanwhile are not counted). */
export function cpuDelta(before: CpuGroups | undefined, after: CpuGroups | undefined): CpuGroups | undefined {
  if (!before || !after) return undefined;
  return {
    self: after.self - before.self,
    postgres: after.postgres - before.postgres,
    rabbitmq: after.rabbitmq - before.rabbitmq,
    other: after.other - before.other,
  };
}
