// A program that needs a token: it asks the Entraclaw daemon, which checks who it is from the kernel.
import { connect } from '../dist/client/index.js';

const client = await connect();
try {
  const me = await client.whoami();
  console.log(`demo-client: the daemon sees me as ${me.exe} ${me.script ?? ''} (client: ${me.client ?? 'not approved'})`);
  const token = await client.get('demo.example.com', 'robot');
  console.log(`demo-client: got demo.example.com/robot (${token.length} bytes, starts ${token.subarray(0, 5)}…)`);
  try {
    await client.get('bank.example.com', 'me');
  } catch (err) {
    console.log(`demo-client: bank.example.com/me refused as expected: ${err.code}: ${err.message}`);
  }
} finally {
  client.close();
}
