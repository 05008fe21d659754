export * from './MessageContract';
export * from './Transactional';
