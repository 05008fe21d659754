export * from './ContextStore';
export * from './AsyncLocalContextStore';
export * from './ClsHookedContextStore';
