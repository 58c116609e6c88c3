// A producer in another language, knowing only a servicedesk JSON Schema: it builds the
// message the schema describes around a data object and publishes it with kafkajs.
// Usage: node publish.cjs SCHEMA.json DATA.json BOOTSTRAP TOPIC
// Prints the message it sent as one line of JSON.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const { Kafka, Partitioners, logLevel } = require("kafkajs");

function resolve(schema, root) {
  // "#/$defs/TicketRequest" -> the definition it names
  while (schema.$ref) schema = root.$defs[schema.$ref.replace("#/$defs/", "")];
  return schema;
}

function missing(value, schema, root) {
  // The schema's required fields the value lacks, for the envelope and its data.
  const own = (schema.required || []).filter((name) => !(name in value));
  const data = resolve(schema.properties.data, root);
  return own.concat((data.required || []).filter((name) => !(name in value.data)).map((n) => `data.${n}`));
}

async function main() {
  const [schemaPath, dataPath, bootstrap, topic] = process.argv.slice(2);
  const schema = JSON.parse(fs.readFileSync(schemaPath, "utf8"));
  const data = JSON.parse(fs.readFileSync(dataPath, "utf8"));
  const id = crypto.randomUUID();
  const message = {
    event_type: schema.properties.event_type.const,
    event_id: id,
    occurred_at: new Date().toISOString(),
    producer: "node-integrator",
    subject_id: id,
    data,
  };
  const lacking = missing(message, schema, schema);
  if (lacking.length > 0) throw new Error(`${schema.$id} requires ${lacking.join(", ")}`);

  const kafka = new Kafka({
    clientId: "node-integrator",
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    retry: { retries: 8 },
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    // The subject's id as the key keeps one subject's messages in order; no headers.
    await producer.send({
      topic,
      acks: -1,
      messages: [{ key: message.subject_id, value: JSON.stringify(message) }],
    });
  } finally {
    await producer.disconnect();
  }
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
