export { SetHeaders, SetRoutingTransport } from './SetRoutingTransport';
export type { SetFlowStats, SetRoutingOptions } from './SetRoutingTransport';
export { setKeyOf, setOfKey, validateSetRules } from './SetRules';
export type { SetKeySource, SetRules } from './SetRules';
