export * from '../transport/memory/MemoryTransport';
