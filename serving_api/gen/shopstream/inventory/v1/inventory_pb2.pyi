from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReserveLine(_message.Message):
    __slots__ = ("product_id", "qty")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    QTY_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    qty: int
    def __init__(self, product_id: _Optional[str] = ..., qty: _Optional[int] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("order_id", "lines", "correlation_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReserveLine]
    correlation_id: str
    def __init__(self, order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReserveLine, _Mapping]]] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("order_id", "already_reserved", "stock")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RESERVED_FIELD_NUMBER: _ClassVar[int]
    STOCK_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    already_reserved: bool
    stock: _containers.RepeatedCompositeFieldContainer[StockStatus]
    def __init__(self, order_id: _Optional[str] = ..., already_reserved: _Optional[bool] = ..., stock: _Optional[_Iterable[_Union[StockStatus, _Mapping]]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("order_id", "correlation_id")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    correlation_id: str
    def __init__(self, order_id: _Optional[str] = ..., correlation_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("order_id", "lines_released")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_RELEASED_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines_released: int
    def __init__(self, order_id: _Optional[str] = ..., lines_released: _Optional[int] = ...) -> None: ...

class StockQuery(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class StockStatus(_message.Message):
    __slots__ = ("product_id", "on_hand", "reserved", "available", "version")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: int
    reserved: int
    available: int
    version: int
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...
