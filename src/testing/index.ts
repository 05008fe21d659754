// The `tmm/testing` entry point: the in-process transport, for an app's own tests and zero-setup demos
// (it is also what `transport: 'memory'` builds). Not a stand-in for a broker's guarantees: nothing survives the process.
export { MemoryTransport } from '../transport/memory/MemoryTransport';
