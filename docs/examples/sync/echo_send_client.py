import os  # added for the tests
import socket

# Create socket
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

# Connect to server
sock.connect(("localhost", int(os.environ.get("EXAMPLE_PORT", "8080"))))  # port from the environment

# Send message to server
sock.send(b"Hello world!")

# Receive message from server
data = sock.recv(1024)

# Print received message
print(data.decode())
