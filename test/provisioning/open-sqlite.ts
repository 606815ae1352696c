/**
 * A second process opening the SQLite provisioning file, as a second worker starting at the same
 * moment would: prints `opening` just before it opens, then `opened` once the schema is in place.
 * Used by sqlite.test.ts; exits 1 with the error if opening fails.
 */
import { SqliteProvisioner } from '../../src/provisioning';

const file = process.argv[2];
if (!file) throw new Error('usage: open-sqlite.ts <file>');
process.stdout.write('opening\n');
const provisioner = new SqliteProvisioner(file);
void provisioner.close().then(() => process.stdout.write('opened\n'));
