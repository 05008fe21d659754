import { TmmError } from '../../errors';

/**
 * Exit codes of the `tmm` CLI; scripts may rely on them (docs/admin.md lists them).
 */
export const ExitCode = {
  Ok: 0,
  /** Something unexpected failed (the message says what). */
  Failure: 1,
  /** Wrong command line: unknown command or option, missing or malformed argument. */
  Usage: 2,
  /** A dead letter or outbox row with that id does not exist. */
  NotFound: 3,
  /**
   * The target is not in a state the action applies to (already resent, not DEAD…); for several ids: at least one was skipped.
   * `amqp migrate-to-quorum`: a queue has consumers, is declared with other arguments, or another migration runs.
   */
  Conflict: 4,
  /** The database (or, for `amqp` commands, the broker) cannot be reached or the configuration (TMM_DB_URL, credentials) is wrong. */
  Unavailable: 5,
  /** Input was refused: an edited payload that is not JSON or fails its contract, a bad filter value, a bad --topology file. */
  InvalidInput: 6,
  /** `status --check`: there are NEW dead letters or DEAD/EXCEPTION outbox rows. */
  Attention: 7,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure that ends the CLI with a given exit code and message. */
export class CliExit extends TmmError {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super('TMM_CLI', message);
  }
}
