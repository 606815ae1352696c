/** The workflows this project's workers run; the bundler starts here. */
export { checkout } from './checkout';
