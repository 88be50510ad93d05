/** Tests start DynamoDB Local the same way the local server and the benchmark do. */
export { startDynamoLocal } from '../../shared/adapters/dynamo-local-process.js';
export type { DynamoLocal } from '../../shared/adapters/dynamo-local-process.js';
