// The baseline of the status benchmark: a bare Fastify server (no logger, no hooks, no schema)
// whose one route answers the same JSON as Ferry's GET /api/v1.0/entries/NAME/status.
// Prints its URL on stdout once it listens; exits on SIGTERM or when stdin closes.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/api/v1.0/entries/:name/status', async (request) => ({
  name: request.params.name,
  status: 'active',
  time: Date.now() / 1000,
}));
await app.listen({ host: '127.0.0.1', port: 0 });
const { port } = app.server.address();
process.stdout.write(`http://127.0.0.1:${port}\n`);
const stop = () => app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
