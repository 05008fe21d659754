import { inject, injectable } from 'inversify';
import { MessageProducer, TransactionManager } from 'tmm';
import { TMM } from 'tmm/inversify';
import { TransactionalMessage } from 'tmm/decorators';
import { OrderPaid } from './OrderPaid';
import { Payment } from './Payment';

@injectable()
export class PaymentService {
  constructor(
    @inject(TMM.TransactionManager) private readonly tx: TransactionManager,
    @inject(TMM.MessageProducer) private readonly producer: MessageProducer,
  ) {}

  /**
   * Inserts the payment and sends `order.paid` in one transaction: the message is published if and only if
   * the payment commits. `failAfterSend` throws after sending, to show the rollback taking the message with it.
   */
  @TransactionalMessage()
  async pay(orderId: string, amountCents: number, failAfterSend = false): Promise<void> {
    await this.tx.getRepository(Payment).insert({ orderId, amountCents, status: 'PAID' });
    await this.producer.send(OrderPaid.of(orderId, amountCents));
    if (failAfterSend) throw new Error(`card declined for ${orderId} after the message was sent`);
  }
}
