export * from './MessageTracer';
export * from './OpenTelemetryMessageTracer';
export * from './correlation';
export * from './stages';
export * from './TracingTransport';
