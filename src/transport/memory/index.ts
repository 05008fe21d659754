export * from './MemoryTransport';
