/**
 * Where the runner finds objects with @Consumer methods at start-up. The inversify module adds one that
 * looks the decorated classes up in the container (src/di); `ConsumerRunner.register()` adds instances
 * directly.
 */
export interface ConsumerSource {
  /** Objects that may have @Consumer methods; asked once per start(). */
  instances(): object[];
  /**
   * True for instances handed to this runner by hand (ConsumerRunner.register): their consumers are this
   * runner's even without a `dataSource` option (one naming another tmm instance is an error). Discovered
   * instances (the container) are filtered by `dataSource`.
   */
  readonly explicit?: boolean;
  /** An instance of an interceptor class, when this source can build one (e.g. bound in the container). */
  resolve?(type: Function): unknown;
}
