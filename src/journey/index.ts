export * from './JourneyEvent';
export * from './JourneyStore';
export * from './TypeOrmJourneyStore';
export * from './BufferedJourneyRecorder';
export * from './businessKey';
export * from './timeline';
export * from './journeySchema';
export * from './deliveryJourney';
