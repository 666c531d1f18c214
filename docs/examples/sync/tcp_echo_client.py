import os  # added for the tests
import socket

# Create a socket
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

# Connect to the server
sock.connect(("localhost", int(os.environ.get("EXAMPLE_PORT", "9999"))))  # port from the environment

# Send data to the server
sock.sendall(b"Hello, world!")

# Receive data from the server
data = sock.recv(1024)

# Print the data
print(data.decode())

# Close the socket
sock.close()
