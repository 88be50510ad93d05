import { App } from 'aws-cdk-lib';
import { StrataStack } from './strata-stack.js';

const app = new App();
new StrataStack(app, 'Strata', {
  description: 'Strata: Docker storage model (images, containers, volumes) as a serverless API',
});
app.synth();
