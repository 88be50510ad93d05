import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { eventJsonSchema } from '../http/event-schemas.js';

/** Where integrators find the event schema; a unit test fails when it is stale. */
export const EVENT_SCHEMA_FILE = fileURLToPath(new URL('./events.schema.json', import.meta.url));

export const eventSchemaText = (): string => `${JSON.stringify(eventJsonSchema(), null, 2)}\n`;

if (process.argv[1] === fileURLToPath(import.meta.url)) writeFileSync(EVENT_SCHEMA_FILE, eventSchemaText());
