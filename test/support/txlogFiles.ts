import { DualLog, LogRecovery } from '../../src/txlog/DualLog';
import { silentLogger } from '../../src/internal';

/**
 * Opens two log directories the way a restart does and returns what the open found (records, repairs), then
 * closes the log again, so the test leaves no file handle to the garbage collector (nor a busy mount behind).
 */
export async function readBack(dirs: string[], segmentBytes: number): Promise<LogRecovery> {
  const log = new DualLog(dirs, segmentBytes, silentLogger);
  try {
    return await log.open();
  } finally {
    await log.close();
  }
}
