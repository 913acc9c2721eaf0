// A client of the public protos in another language, as a client team would write it:
// proto-loader reads protos/modelverse/v1/search.proto, grpc-js connects over TLS trusting the
// given CA and sends the API key as 'authorization: Bearer <key>' metadata.
// Usage: node client.js ADDRESS CA_PEM KEY MODEL_ID   -> one JSON line on stdout.
'use strict';
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [address, caPath, key, modelId] = process.argv.slice(2);
const protos = path.resolve(__dirname, '..', '..', 'protos');
const definition = protoLoader.loadSync(path.join(protos, 'modelverse/v1/search.proto'), {
  includeDirs: [protos], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const v1 = grpc.loadPackageDefinition(definition).modelverse.v1;
const client = new v1.SearchService(address, grpc.credentials.createSsl(fs.readFileSync(caPath)));

function call(method, request, withKey) {
  const metadata = new grpc.Metadata();
  if (withKey) metadata.set('authorization', `Bearer ${key}`);
  const deadline = new Date(Date.now() + 10000);
  return new Promise((resolve) => {
    client[method](request, metadata, { deadline }, (error, answer) => {
      resolve(error ? { code: error.code, details: error.details } : { code: 0, answer });
    });
  });
}

(async () => {
  const result = {
    getModel: await call('GetModel', { id: modelId }, true),
    listModels: await call('ListModels', { page_size: 100 }, true),
    withoutKey: await call('GetModel', { id: modelId }, false),
    hugeId: await call('GetModel', { id: 'x'.repeat(20000) }, true),
  };
  process.stdout.write(JSON.stringify(result) + '\n');
  client.close();
})();
