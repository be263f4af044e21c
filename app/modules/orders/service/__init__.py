"""Use cases of orders: checkout, the payment saga, cancelling and shipping, and the read side.

The saga is choreographed through integration events and jobs:
`OrderPlaced` -> the catalog reserves stock -> `stock_reserved` -> the payment job authorises
(`paid`) and captures (`confirmed`, the catalog commits the stock). Each failure compensates:
no stock -> `rejected`; a declined or unreachable payment -> `payment_failed` and the catalog
releases the stock; a cancelled order releases its stock and refunds what was paid.
Should this module stay silent past RESERVATION_TTL_S, the catalog gives the stock back itself
(`StockReservationExpired`): an order still awaiting payment is cancelled, and one confirmed
regardless is refunded if the catalog cannot take its stock again (`StockCommitFailed`).

One file per use case: `orders` (checkout, reading, cancelling, shipping, the catalog's
answers, expiry), `checkout` (the request and the order it makes), `payment_saga` (the payment
jobs); `transitions` is the state machine every status change goes through, `job_requests` the
jobs asked for after commit.
"""

from app.modules.orders.service.checkout import Checkout, PlacedOrder
from app.modules.orders.service.job_requests import (
    EXPIRE_ORDER_JOB,
    REFUND_PAYMENT_JOB,
    SEND_ORDER_EMAIL_JOB,
    SWEEP_BATCH,
    TAKE_PAYMENT_JOB,
    enqueue_order_email,
)
from app.modules.orders.service.orders import OrderService
from app.modules.orders.service.payment_saga import PaymentSaga
from app.modules.orders.service.transitions import EMAILED_STATUSES, TRANSITIONS, change_status

__all__ = [
    "EMAILED_STATUSES",
    "EXPIRE_ORDER_JOB",
    "REFUND_PAYMENT_JOB",
    "SEND_ORDER_EMAIL_JOB",
    "SWEEP_BATCH",
    "TAKE_PAYMENT_JOB",
    "TRANSITIONS",
    "Checkout",
    "OrderService",
    "PaymentSaga",
    "PlacedOrder",
    "change_status",
    "enqueue_order_email",
]
